// A webhook receiver for the fan-out benchmark: answers 200 at once, counts requests and keeps,
// per delivery, the job id and the time it arrived. Run as a child process with an IPC channel.
import http from 'node:http';

const arrivals = [];
let count = 0;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const at = performance.timeOrigin + performance.now();
    count++;
    if (process.env.SINK_KEEP === '1') {
      try {
        arrivals.push([JSON.parse(Buffer.concat(chunks).toString()).data.job.id, at]);
      } catch {
        arrivals.push([null, at]);
      }
    }
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('message', (m) => {
  if (m === 'count') process.send({ count });
  if (m === 'arrivals') process.send({ arrivals });
  if (m === 'reset') {
    count = 0;
    arrivals.length = 0;
    process.send({ reset: true });
  }
});
process.on('disconnect', () => process.exit(0));
