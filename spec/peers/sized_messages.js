// The messages of many sizes the interop peers echo under permessage-deflate: empty,
// around the usual 1024-byte threshold, around the 16-bit frame length, and up to 1 MiB;
// text (compressible) and binary (half noise) in turn, as [Buffer, isBinary] pairs. The
// same list as sized_messages in py_client.py and in spec/interop.lua.
'use strict';

const SIZES = [0, 1, 125, 126, 1023, 1024, 1025, 4096, 65535, 65536, 300000, 1048579];

function text(n) {
  let s = '';
  for (let i = 0; s.length < n; i++) s += `permessage-deflate ${i} window ${i % 7} `;
  return Buffer.from(s.slice(0, n), 'latin1');
}

function binary(n) {
  const b = Buffer.alloc(n);
  let x = n;
  for (let i = 0; i < n; i++) {
    x = (x * 69069 + 1) % 4294967296;
    b[i] = i % 512 < 256 ? x >>> 24 : i % 251;
  }
  return b;
}

module.exports = function sizedMessages() {
  return SIZES.map((n, i) => (i % 2 === 0 ? [text(n), false] : [binary(n), true]));
};
