// Test i's reference peer (bench/run.sh): Node's http module serving what
// bench/http_server.lua serves, "Hello, world!" (13 bytes, text/plain), to every request.
//   node spec/peers/http_server.js [port]    (port 0, the default: any free port)
// Prints "listening on PORT". Node's defaults otherwise: keep-alive (keepAliveTimeout 5 s,
// as luaws's keepalive_timeout), pipelined requests answered in order, and the Date,
// Connection and Keep-Alive headers it adds by itself.
'use strict';
const http = require('http');

const port = Number(process.argv[2] || 0);
const body = 'Hello, world!';

// setHeader, not writeHead: end(body) with no head stored yet sets Content-Length, as
// luaws's res:finish(body) does (writeHead first would make Node send it chunked).
const server = http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end(body);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
