const http = require("node:http");

http
  .createServer((req, res) => res.end("hello from the example app\n"))
  .listen(8080);
