#!/bin/sh
# Writes the seed corpora of the fuzzers. For fuzz_frame the first byte's low 3 bits say
# how many chunk-size bytes follow before the frames (its high bits set a size limit).
# For fuzz_hixie likewise, and bit 3 of the first byte picks hixie-75 (set) or -76; the
# rest is frames, and is also tried as a request head.
set -e
cd "$(dirname "$0")"
mkdir -p corpus/frame corpus/http corpus/hixie corpus/inflate corpus/conn corpus/body corpus/proxy
f=corpus/frame
# RFC 6455 5.7 examples
printf '\000\201\005Hello' > $f/text-unmasked
printf '\000\201\205\067\372\041\075\177\237\115\121\130' > $f/text-masked
printf '\002\001\002\001\003Hel\200\002lo' > $f/fragmented
printf '\000\211\005Hello\212\205\067\372\041\075\177\237\115\121\130' > $f/ping-pong
printf '\003\007\001\377\202\176\001\000' > $f/len126
head -c 256 /dev/zero | tr '\000' 'x' >> $f/len126
printf '\000\202\177\000\000\000\000\000\001\000\000' > $f/len127
# a fragmented text message with a ping between, masked; a close frame; compressed
printf '\000\001\202\000\000\000\000\316\272\211\200\001\002\003\004\200\201\000\000\000\000\341' > $f/interleaved
printf '\000\210\202\001\002\003\004\002\352' > $f/close-1000
printf '\020\301\205\000\000\000\000\362\110\315\311\007' > $f/rsv1
printf '\000\201\203\000\000\000\000\355\240\200' > $f/bad-utf8

h=corpus/http
printf 'GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n' > $h/rfc-request
printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n' > $h/rfc-response
printf '\r\nPOST /x?y=1 HTTP/1.0\nA: b\nC:\n\n' > $h/lf-only
printf 'HTTP/1.1 404\r\nX:   a b  \r\n\r\n' > $h/no-reason
printf 'GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n' > $h/obs-fold
printf 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 8\r\n\r\n' > $h/version8

x=corpus/hixie
# text frames, empty and not, in 3-byte chunks; the -76 closing handshake
printf '\001\002\000Hello\377\000\377\377\000' > $x/text-close
# length-prefixed frames to skip (0x80 0x81 0x00: 128 bytes), a discarded sentinel frame
printf '\010\200\002ab\001junk\377\000\316\272\377' > $x/skip-75
printf '\000\200\201\000' > $x/skip-128
head -c 128 /dev/zero >> $x/skip-128
printf '\000ok\377' >> $x/skip-128
# bad UTF-8, a character cut by 0xFF, and a limit (high bits) that a frame passes
printf '\000\000ab\300\257\377' > $x/bad-utf8
printf '\000\000\342\202\377' > $x/cut-utf8
printf '\020\000abcdefghij\377' > $x/too-big
# the -76 worked example request and key3, and a -75 request
printf '\000GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\nSec-WebSocket-Protocol: sample\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key1: 4 @1  46546xW%%0l 1 5\r\nOrigin: http://example.com\r\n\r\n^n:ds[4U' > $x/request-76
printf '\010GET /demo HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nHost: example.com\r\nOrigin: http://example.com\r\n\r\n\000hi\377' > $x/request-75
# the worked example with frames in the same input, fed in 5- and 11-byte chunks; the -75
# example with its protocol; -76 keys whose digits are not a multiple of the spaces
printf '\002\004\012GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\nSec-WebSocket-Protocol: sample\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key1: 4 @1  46546xW%%0l 1 5\r\nOrigin: http://example.com\r\n\r\n^n:ds[4U\000h\303\251llo\377\000\377\200\002ab\377\000' > $x/request-76-frames
printf '\010GET /demo HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nHost: example.com\r\nOrigin: http://example.com\r\nWebSocket-Protocol: sample\r\n\r\n\000h\303\251llo\377' > $x/request-75-protocol
printf '\000GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nSec-WebSocket-Key2: 1 3 5\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key1: 4 @1  46546xW%%0l 1 5\r\n\r\n^n:ds[4U' > $x/request-76-bad-key
i=corpus/inflate
# fuzz_inflate: byte 0 bit 7 set = the rest is an extensions header; else bit 0 = no
# context takeover, bits 1-3 = window bits - 8, bits 4-5 = size limit, then messages,
# each a length byte and its bytes. RFC 7692 7.2.3's examples, then a few more.
printf '\016\007\362\110\315\311\311\007\000\005\362\000\021\000\000' > $i/hello-twice
printf '\017\007\362\110\315\311\311\007\000\007\362\110\315\311\311\007\000' > $i/no-context
printf '\016\013\000\005\000\372\377Hello\000' > $i/stored
printf '\016\010\363\110\315\311\311\007\000\000\005\362\000\021\000\000' > $i/bfinal
printf '\016\015\362\110\005\000\000\000\377\377\312\311\311\007\000\001\000' > $i/two-blocks
printf '\000\005\362\110\315\311\311' > $i/window8-cut
# 200000 zeros in 211 bytes, under a 100-byte limit
{ printf '\036\323\354\301\061\001\000\000\000\302\240\365\117\155\006\177\240'; head -c 193 /dev/zero; printf '\200\327\000'; } > $i/bomb
printf '\200permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate' > $i/header-offers
printf '\200permessage-deflate; server_max_window_bits="1\\0"; client_no_context_takeover, x-foo;a=b' > $i/header-quoted

c=corpus/conn
# fuzz_conn (see its header): byte 0 = role and options, then operations; every event
# callback takes the next byte as its action (0: none, 1 pause, 2 resume, 25 send "a",
# 6 close, 8 send 70000 bytes). feed FORMAT: the peer sends printf FORMAT (<= 31 bytes).
byte() { printf "\\$(printf '%03o' "$1")"; }
feed() { n=$(printf "$1" | wc -c); byte $(( (n - 1) * 8 )); printf "$1"; }
HELLO='\201\205\067\372\041\075\177\237\115\121\130'   # RFC 6455 5.7, masked
{ byte 2; byte 0; byte 0; feed "$HELLO"; byte 25; feed '\211\205\067\372\041\075\177\237\115\121\130'
  feed '\210\202\001\002\003\004\002\352'; byte 3; byte 3; } > $c/server-echo-close
{ byte 2; byte 0; byte 0; feed "$HELLO$HELLO"; byte 1; byte 6; byte 2; byte 0; byte 7; byte 3; } > $c/server-pause
{ byte 10; byte 0; byte 0; byte 2; byte 6; byte 8; byte 6; byte 25; byte 250; byte 3; byte 3; } > $c/server-max-buffered
{ byte 18; byte 0; byte 0; byte 2; byte 6; byte 8; byte 6; byte 25; byte 250; byte 3; byte 0; } > $c/server-bp-error
{ byte 26; byte 0; byte 0; byte 45; byte 45; feed '\001\201\000\000\000\000a'; byte 85; byte 3; } > $c/server-timeouts
{ byte 2; byte 0; byte 0; feed '\301\201\000\000\000\000a'; byte 3; byte 3; } > $c/server-rsv1
{ byte 6; feed 'Origin: http://example.com\r\n\r\n'; byte 0; byte 0; feed "$HELLO"; byte 6; byte 3; } > $c/server-open-head
{ byte 0; feed 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'; byte 5; byte 3; } > $c/server-plain-http
{ byte 3; byte 25; feed '\201\005Hello'; byte 6; feed '\210\002\003\350'; byte 3; byte 7; byte 3; } > $c/client-open-close
{ byte 71; feed 'Sec-WebSocket-Protocol: chat\r\n'; feed '\r\n'; byte 0; feed '\211\001x\212\000'; byte 3; } > $c/client-protocol
{ byte 1; feed 'HTTP/1.1 101 Switching'; feed ' Protocols'; feed '\r\nUpgrade: websocket\r\n\r\n'; byte 3; } > $c/client-bad-response

b=corpus/body
# fuzz_body: byte 0 bits 0-2 = how many chunk-size bytes follow, bits 3-4 pick a body
# limit (7, 100, 4096, 1 MiB; also run without); then a request head and what follows
# it. Chunks with extensions and trailers (RFC 9112 7.1), then a pipelined request.
POST='POST /up HTTP/1.1\r\nHost: x\r\n'
CHUNKED="${POST}Transfer-Encoding: chunked\r\n\r\n"
WIKI='4;name=value\r\nWiki\r\n5 ; a = b ;c;d="q\\"x;y"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n'
NEXT='GET /next HTTP/1.1\r\nHost: x\r\n\r\n'
{ printf '\000'; printf "$CHUNKED$WIKI$NEXT"; } > $b/chunked
{ printf '\013\001\004\012'; printf "$CHUNKED$WIKI$NEXT"; } > $b/chunked-split
{ printf '\000'; printf "${POST}Content-Length: 5\r\n\r\nhello$NEXT"; } > $b/length-pipelined
{ printf '\001\002'; printf "${POST}Content-Length: 3, 3\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"; } > $b/length-list
{ printf '\000'; printf 'POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nok'; } > $b/http10-keep-alive
{ printf '\010'; printf "${POST}Expect: 100-continue\r\nContent-Length: 101\r\n\r\n"; } > $b/length-over-limit
{ printf '\000'; printf "${POST}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"; } > $b/te-and-cl
{ printf '\000'; printf "${POST}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"; } > $b/te-gzip-chunked
{ printf '\000'; printf "${POST}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"; } > $b/te-chunked-gzip
{ printf '\000'; printf 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'; } > $b/te-http10
{ printf '\000'; printf "${CHUNKED}10000000000000000\r\n"; } > $b/size-overflow
{ printf '\010'; printf "${CHUNKED}40\r\n"; head -c 64 /dev/zero | tr '\000' 'x'; printf '\r\n41\r\n'; } > $b/chunked-over-limit
{ printf '\000'; printf "${CHUNKED}5\nhello\r\n0\r\n\r\n"; } > $b/bare-lf
{ printf '\002\000\002'; printf "${CHUNKED}3\r\nabc\r\n0\r\nA: b\r\n c\r\n\r\n"; } > $b/trailer-obs-fold
p=corpus/proxy
# fuzz_proxy (see its header): byte 0 = credentials (1), a valid 2xx first (2), with the
# next bytes in the same push (4), small limits (8), short timeouts (16); then operations
# as fuzz_conn's (7: the 101 answering the upgrade request).
{ byte 2; byte 7; byte 3; feed '\201\002hi'; byte 3; } > $p/tunnel-open
{ byte 7; byte 22; printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'; byte 3; } > $p/tunnel-and-101
{ byte 1; feed 'HTTP/1.1 407 Proxy Authentication '; feed 'Required\r\n\r\n'; byte 3; } > $p/refused-407
{ byte 0; feed 'HTTP/1.1 100 Continue\r\n\r\n'; feed 'HTTP/1.0 200 OK\r\nVia: x\r\n\r\n'; byte 7; byte 3; } > $p/interim-100
{ byte 8; feed 'HTTP/1.1 200 OK\r\nA: b\r\nC: d\r\nE: f\r\nG: h\r\n'; feed 'I: j\r\n\r\n'; byte 3; } > $p/too-many-headers
{ byte 16; feed 'HTTP/1.1 2'; byte 4; byte 124; byte 3; } > $p/timeout
{ byte 0; feed 'HTTP/1.1 200 OK\r\n'; byte 6; byte 3; } > $p/eof
