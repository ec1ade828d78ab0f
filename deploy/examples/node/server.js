'use strict';
// Example Node app for the Switchyard gateway.
//
//   GET /            JSON: the URL as the app saw it and the X-Forwarded-* headers the gateway sent
//   GET /events?n=N  Server-Sent Events: N events (default 10, at most 1000), one every 100 ms
//   GET /ws          WebSocket echo (text and binary frames are echoed as they came)
//   GET /status/:code  answers with that status code (for error-mapping tests)
//   any other GET    the same JSON as /, so prefix stripping can be seen on any path
//
// Listens on the unix socket named by SOCKET if set, else on PORT (default 3000) on HOST (default 127.0.0.1).

const fs = require('node:fs');
const http = require('node:http');
const express = require('express');
const { WebSocketServer } = require('ws');

const app = express();
app.disable('x-powered-by');

function info(req, res) {
  const forwarded = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('x-forwarded-') || name === 'forwarded') forwarded[name] = value;
  }
  res.json({
    app: 'node',
    method: req.method,
    originalUrl: req.originalUrl,
    path: req.path,
    host: req.headers.host || '',
    forwarded,
  });
}

app.get('/', info);

app.get('/status/:code', (req, res) => {
  const code = Number.parseInt(req.params.code, 10);
  if (!(code >= 200 && code <= 599)) {
    res.status(400).json({ error: 'status must be 200..599' });
    return;
  }
  res.status(code).json({ app: 'node', status: code });
});

app.get('/events', (req, res) => {
  let n = Number.parseInt(String(req.query.n ?? '10'), 10);
  if (!(n >= 1)) n = 10;
  n = Math.min(n, 1000);
  res.status(200);
  res.set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  let i = 0;
  const send = () => {
    i++;
    res.write(`id: ${i}\nevent: tick\ndata: ${JSON.stringify({ n: i, of: n, at: Date.now() })}\n\n`);
    if (i >= n) {
      clearInterval(timer);
      res.end();
    }
  };
  const timer = setInterval(send, 100);
  send();
  req.on('close', () => clearInterval(timer));
});

app.use((req, res) => {
  if (req.method === 'GET' || req.method === 'HEAD') {
    info(req, res);
    return;
  }
  res.status(405).json({ error: 'method not allowed' });
});

const server = http.createServer(app);
const wss = new WebSocketServer({ noServer: true, maxPayload: 16 << 20 });

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});

server.on('upgrade', (req, socket, head) => {
  const pathname = new URL(req.url, 'http://placeholder').pathname;
  if (pathname !== '/ws') {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

function shutdown() {
  for (const client of wss.clients) client.terminate();
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

const socketPath = process.env.SOCKET;
if (socketPath) {
  try {
    fs.unlinkSync(socketPath); // a stale socket from a killed run would make listen fail with EADDRINUSE
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  server.listen(socketPath, () => {
    fs.chmodSync(socketPath, 0o660);
    console.log(`listening on unix:${socketPath}`);
  });
} else {
  const port = Number.parseInt(process.env.PORT || '3000', 10);
  const host = process.env.HOST || '127.0.0.1';
  server.listen(port, host, () => console.log(`listening on http://${host}:${port}`));
}
