"""An independent EventSource client for the specs: Python's standard library only.

    /usr/bin/python3 spec/peers/sse_reader.py URL [--last-event-id ID] [--reconnect N]
                                                  [--leave-after N]

Reads URL with http.client (which de-chunks a chunked body) and parses the stream as the
WHATWG HTML standard's "Server-sent events" section says (9.2.5-9.2.6): UTF-8 with a
leading BOM dropped, lines ended by CRLF, LF or CR, comments, the event, data, id and
retry fields, dispatch at a blank line, an unfinished event dropped at the end. When the
stream ends it reconnects up to N times after the reconnection time, sending
Last-Event-ID as a browser does. --leave-after N closes the connection after N messages.
Prints one JSON line per thing it sees ({"event": "open" | "message" | "comment" |
"retry" | "end" | "left" | "fail", ...}); PEER_TIMEOUT (env, seconds, default 20)
bounds every read.
"""
import codecs
import http.client
import json
import os
import sys
import time
import urllib.parse

TIMEOUT = float(os.environ.get("PEER_TIMEOUT", "20"))


def log(**event):
    print(json.dumps(event), flush=True)


class Parser:
    """The event stream interpretation (WHATWG 9.2.6), fed decoded text."""

    def __init__(self, source):
        self.source = source          # holds last_event_id and reconnection_ms
        self.pending = ""             # an unfinished line
        self.data = ""
        self.type = ""
        self.id_buffer = ""           # per stream, as 9.2.6 says; the source keeps its own
        self.messages = 0

    def feed(self, text, final=False):
        text = self.pending + text
        start = 0
        i = 0
        n = len(text)
        while i < n:
            c = text[i]
            if c == "\n" or c == "\r":
                if c == "\r" and i + 1 == n and not final:
                    break             # CR last: it may be the first half of a CRLF
                self.line(text[start:i])
                if c == "\r" and i + 1 < n and text[i + 1] == "\n":
                    i += 1
                start = i + 1
            i += 1
        self.pending = text[start:]
        if final:
            self.pending = ""         # an unfinished line, and event, are dropped

    def line(self, line):
        if line == "":
            self.dispatch()
            return
        if line.startswith(":"):
            log(event="comment", text=line[1:])
            return
        if ":" in line:
            name, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "event":
            self.type = value
        elif name == "data":
            self.data += value + "\n"
        elif name == "id":
            if "\0" not in value:
                self.id_buffer = value
        elif name == "retry":
            if value != "" and all("0" <= ch <= "9" for ch in value):
                self.source.reconnection_ms = int(value)
                log(event="retry", ms=int(value))
        # any other field is ignored

    def dispatch(self):
        self.source.last_event_id = self.id_buffer
        if self.data == "":
            self.data = self.type = ""
            return
        data = self.data[:-1] if self.data.endswith("\n") else self.data
        log(event="message", type=self.type or "message", data=data,
            lastEventId=self.source.last_event_id)
        self.data = self.type = ""
        self.messages += 1
        self.source.seen += 1


class Source:
    def __init__(self, url, last_event_id):
        self.url = urllib.parse.urlsplit(url)
        self.last_event_id = last_event_id
        self.reconnection_ms = 3000
        self.seen = 0
        self.connections = 0

    def connect_once(self, leave_after):
        """Reads one response; True when it ended normally (then one may reconnect)."""
        self.connections += 1
        conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=TIMEOUT)
        path = self.url.path or "/"
        if self.url.query:
            path += "?" + self.url.query
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        ctype = resp.getheader("Content-Type", "")
        log(event="open", connection=self.connections, status=resp.status, contentType=ctype,
            cacheControl=resp.getheader("Cache-Control", ""),
            chunked=resp.getheader("Transfer-Encoding", "").lower() == "chunked",
            sentLastEventId=self.last_event_id)
        # WHATWG 9.2.3: anything but 200 with text/event-stream fails the connection.
        if resp.status != 200 or ctype.split(";")[0].strip().lower() != "text/event-stream":
            log(event="fail", status=resp.status, contentType=ctype)
            conn.close()
            return False
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        parser = Parser(self)
        first = True
        while True:
            chunk = resp.read1(65536)
            text = decoder.decode(chunk, final=not chunk)
            if first and text:
                if text.startswith("\ufeff"):
                    text = text[1:]
                first = False
            parser.feed(text, final=not chunk)
            if leave_after and parser.messages >= leave_after:
                conn.close()
                log(event="left", connection=self.connections)
                return False
            if not chunk:
                break
        conn.close()
        log(event="end", connection=self.connections)
        return True


def main(argv):
    url = argv[1]
    last_event_id, reconnect, leave_after = "", 0, 0
    i = 2
    while i < len(argv):
        if argv[i] == "--last-event-id":
            last_event_id = argv[i + 1]
        elif argv[i] == "--reconnect":
            reconnect = int(argv[i + 1])
        elif argv[i] == "--leave-after":
            leave_after = int(argv[i + 1])
        else:
            raise SystemExit("unknown argument " + argv[i])
        i += 2
    source = Source(url, last_event_id)
    ok = source.connect_once(leave_after)
    while ok and reconnect > 0:
        reconnect -= 1
        time.sleep(source.reconnection_ms / 1000.0)
        ok = source.connect_once(leave_after)
    log(event="done", messages=source.seen, connections=source.connections)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except Exception as e:   # a peer that fails says so on its output
        log(event="fail", error=repr(e))
        sys.exit(1)
