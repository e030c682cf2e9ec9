"use strict";
// Drives one unmodified npm SeaweedFS client against a running cluster and prints what each of
// its public calls produced, as one JSON object on the last line of stdout:
//
//   {"client": "...", "steps": {"<step>": {"ok": true, "value": ...} | {"ok": false, "error": "..."}}}
//
// Usage: node drive.js '<spec JSON>' where the spec is
//   {"client": "node-seaweedfs" | "seaweedfs", "master": "host:port", "volume": "host:port",
//    "files": ["<a>", "<b>", "<c>", "<text.txt>"], "scratch": "<dir>"}
// File contents never travel through stdout: reads report their length and sha256, which
// tests/cluster/test_clients_npm.py compares with the files it wrote. The assertions live there;
// this script only records, and keeps going after a failed step so one gap does not hide others.

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const { Readable } = require("stream");

const spec = JSON.parse(process.argv[2]);
const steps = {};

function digest(buffer) {
  return { length: buffer.length, sha256: crypto.createHash("sha256").update(buffer).digest("hex") };
}

function describe(err) {
  if (err && typeof err.message === "string") return err.message;
  try {
    return JSON.stringify(err);
  } catch (_) {
    return String(err);
  }
}

// Both clients parse some answers inside stream 'end' callbacks, where a throw escapes their
// promises as an uncaught exception; catching it here records the step as failed instead of
// leaving it pending forever.
async function step(name, fn) {
  let onUncaught;
  const crashed = new Promise((resolve) => {
    onUncaught = (err) => resolve({ ok: false, error: "uncaught: " + describe(err) });
    process.once("uncaughtException", onUncaught);
  });
  const settled = Promise.resolve()
    .then(fn)
    .then(
      (value) => ({ ok: true, value: value === undefined ? null : value }),
      (err) => ({ ok: false, error: describe(err) }),
    );
  const result = await Promise.race([settled, crashed]);
  process.removeListener("uncaughtException", onUncaught);
  steps[name] = result;
  return result.ok ? result.value : undefined;
}

function finished(stream) {
  return new Promise((resolve, reject) => {
    stream.on("finish", resolve);
    stream.on("error", reject);
  });
}

async function readToFile(readFn, file) {
  const out = fs.createWriteStream(file);
  const done = finished(out);
  await readFn(out);
  await done;
  return digest(fs.readFileSync(file));
}

function chunks(buffer, size) {
  const parts = [];
  for (let at = 0; at < buffer.length; at += size) parts.push(buffer.subarray(at, at + size));
  return parts;
}

function pickInfo(info) {
  return { fid: info.fid, url: info.url, publicUrl: info.publicUrl, count: info.count };
}

// A compressible .txt, which volume servers store gzipped. Neither client asks for gzip
// (no Accept-Encoding), so the read must come back as the bytes written.
async function textRoundTrip(client, file) {
  const written = await step("writeText", async () => pickInfo(await client.write(file)));
  if (written) await step("readText", async () => digest(await client.read(written.fid)));
}

async function nodeSeaweedfs() {
  const Client = require("node-seaweedfs");
  const [server, port] = spec.master.split(":");
  const client = new Client({ server, port: Number(port) });
  const [pathA, pathB, pathC, pathText] = spec.files;

  await step("systemStatus", async () => {
    const status = await client.systemStatus();
    return { version: status.Version, topology: typeof status.Topology === "object" };
  });
  await step("masterStatus", async () => {
    const status = await client.masterStatus();
    return { isLeader: status.IsLeader, leader: status.Leader };
  });
  await step("volumeStatus", async () => {
    const status = await client.volumeStatus(spec.volume);
    return { version: status.Version, volumes: Array.isArray(status.Volumes) };
  });

  const byPath = await step("writePath", async () => pickInfo(await client.write(pathA)));
  if (byPath) {
    await step("readPath", async () => digest(await client.read(byPath.fid)));
    await step("readPathToStream", async () =>
      readToFile((out) => client.read(byPath.fid, out), path.join(spec.scratch, "streamed")));
    await step("find", async () => (await client.find(byPath.fid)).locations.map((l) => l.url));
  }
  const byBuffer = await step("writeBuffer", async () =>
    pickInfo(await client.write(fs.readFileSync(pathB))));
  if (byBuffer) await step("readBuffer", async () => digest(await client.read(byBuffer.fid)));
  const byStream = await step("writeStream", async () =>
    pickInfo(await client.write(fs.createReadStream(pathC))));
  if (byStream) await step("readStream", async () => digest(await client.read(byStream.fid)));
  await textRoundTrip(client, pathText);

  // A stream whose length form-data cannot know (not a file, not an HTTP response): it sends a
  // Content-Length that counts only the multipart framing, then the whole body. The server sees a
  // truncated multipart body followed by garbage; what matters is that nothing gets stored.
  const unknownLength = await step("writeUnknownLength", async () =>
    pickInfo(await client.write(Readable.from(chunks(fs.readFileSync(pathA), 1000)))));
  if (unknownLength) {
    await step("readUnknownLength", async () => digest(await client.read(unknownLength.fid)));
  }

  // One assign with count=2: the second file goes to <fid>_1.
  const many = await step("writeMany", async () =>
    pickInfo(await client.write([pathA, fs.readFileSync(pathB)])));
  if (many) {
    await step("readMany0", async () => digest(await client.read(many.fid)));
    await step("readMany1", async () => digest(await client.read(many.fid + "_1")));
  }

  // Assign options pass through to /dir/assign, lookups name the collection, and remove
  // deletes at every location.
  const inCollection = { replication: "001", collection: "npm" };
  const replicated = await step("writeReplicated", async () =>
    pickInfo(await client.write(fs.readFileSync(pathB), inCollection)));
  if (replicated) {
    await step("findReplicated", async () =>
      (await client.find(replicated.fid, inCollection)).locations.map((l) => l.url).sort());
    await step("readReplicated", async () =>
      digest(await client.read(replicated.fid, null, inCollection)));
    await step("removeReplicated", async () => client.remove(replicated.fid, inCollection));
    await step("readReplicatedAfterRemove", async () =>
      digest(await client.read(replicated.fid, null, inCollection)));
  }

  if (byPath) {
    await step("remove", async () => client.remove(byPath.fid));
    await step("readAfterRemove", async () => digest(await client.read(byPath.fid)));
    await step("removeAgain", async () => client.remove(byPath.fid));
  }
  await step("findMissingVolume", async () => client.find("9999,01637037d6"));
  await step("vacuum", async () => {
    const answer = await client.vacuum({ garbageThreshold: 0.4 });
    return { topology: typeof answer.Topology === "object" };
  });
}

async function seaweedfs() {
  const SeaweedFS = require("seaweedfs");
  const [host, port] = spec.master.split(":");
  // The defaults retry a failing master call 60 times, 2 s apart; keep a failure quick.
  const client = new SeaweedFS({
    masters: [{ host, port: Number(port) }],
    retry_count: 2,
    retry_timeout: 100,
    log_level: "fatal",
  });
  const [pathA, pathB, , pathText] = spec.files;

  await step("connect", async () => client.connect());
  await step("clusterStatus", async () => {
    const status = await client.clusterStatus();
    return { isLeader: status.IsLeader, leader: status.Leader };
  });

  const byBuffer = await step("writeBuffer", async () =>
    pickInfo(await client.write(fs.readFileSync(pathB))));
  if (byBuffer) await step("readBuffer", async () => digest(await client.read(byBuffer.fid)));
  const byPath = await step("writePath", async () => pickInfo(await client.write(pathA)));
  if (byPath) {
    await step("readPath", async () => digest(await client.read(byPath.fid)));
    await step("readPathToStream", async () =>
      readToFile((out) => client.read(byPath.fid, out), path.join(spec.scratch, "streamed")));
    await step("find", async () => client.find(byPath.fid));
  }
  await textRoundTrip(client, pathText);
  const many = await step("writeMany", async () =>
    pickInfo(await client.write([pathA, fs.readFileSync(pathB)])));
  if (many) {
    await step("readMany0", async () => digest(await client.read(many.fid)));
    await step("readMany1", async () => digest(await client.read(many.fid + "_1")));
  }
  if (byPath) {
    await step("remove", async () => client.remove(byPath.fid));
    await step("readAfterRemove", async () => digest(await client.read(byPath.fid)));
    await step("removeAgain", async () => client.remove(byPath.fid));
  }
}

const drivers = { "node-seaweedfs": nodeSeaweedfs, seaweedfs };

async function main() {
  const driver = drivers[spec.client];
  if (!driver) throw new Error("unknown client " + JSON.stringify(spec.client));
  await driver();
}

main().then(
  () => {
    process.stdout.write("\n" + JSON.stringify({ client: spec.client, steps }) + "\n");
    process.exit(0);
  },
  (err) => {
    process.stderr.write((err && err.stack) || String(err));
    process.exit(2);
  },
);
