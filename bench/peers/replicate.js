#!/usr/bin/env node
// The PouchDB baseline of `caja-bench sync-backlog`: the same documents the
// register synced to the hub (one canonical event envelope per line of
// --docs), written into a local on-disk PouchDB (LevelDB), then replicated
// with `db.replicate.to()` to a pouchdb-server (LevelDB on disk) started as a
// separate process on a loopback port. Only the replication is timed, as only
// the sync is timed on the Caja side.
//
//   node replicate.js --docs events.jsonl --work DIR [--batch-size 500]
//
// Prints one line of JSON: {"docs", "ms", "docs_per_s", "batch_size", ...}.
//
// Durability, honestly: PouchDB's LevelDB adapter writes through leveldown
// without `sync: true`, so neither the local database nor pouchdb-server
// fsyncs a write: an acknowledged replication survives a process crash, not a
// power cut. Caja fsyncs every push at the hub (SQLite WAL, synchronous=FULL)
// and every acknowledged-seq update at the register before going on.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const { spawn } = require('child_process');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i === -1) return fallback;
  if (i + 1 >= process.argv.length) throw new Error(`${name} needs a value`);
  return process.argv[i + 1];
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitUp(url, server, deadlineMs) {
  const until = Date.now() + deadlineMs;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`pouchdb-server exited with ${server.exitCode}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch (_) {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`pouchdb-server not up at ${url}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main() {
  const docsFile = arg('--docs');
  const work = arg('--work');
  const batchSize = Number.parseInt(arg('--batch-size', '500'), 10);
  if (!docsFile || !work) throw new Error('usage: replicate.js --docs FILE --work DIR [--batch-size N]');
  const PouchDB = require('pouchdb');
  const serverBin = require.resolve('pouchdb-server/bin/pouchdb-server');

  // The documents: the envelope as the register journaled it, _id = event id.
  const docs = fs
    .readFileSync(docsFile, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const e = JSON.parse(l);
      return Object.assign({ _id: e.id }, e);
    });

  fs.mkdirSync(path.join(work, 'server'), { recursive: true });
  const port = await freePort();
  const server = spawn(
    process.execPath,
    [serverBin, '--host', '127.0.0.1', '--port', String(port), '--dir', path.join(work, 'server'),
      '--config', path.join(work, 'server', 'config.json'), '--no-stdout-logs'],
    { cwd: path.join(work, 'server'), stdio: ['ignore', 'ignore', 'inherit'] },
  );
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitUp(`${base}/`, server, 30000);
    const created = await fetch(`${base}/sales`, { method: 'PUT' });
    if (!created.ok) throw new Error(`PUT /sales answered ${created.status}`);

    // Not timed: the local database, as the register's journal is not timed.
    const local = new PouchDB(path.join(work, 'local'));
    for (let i = 0; i < docs.length; i += 500) {
      const res = await local.bulkDocs(docs.slice(i, i + 500));
      const bad = res.find((r) => !r.ok);
      if (bad) throw new Error(`bulkDocs: ${JSON.stringify(bad)}`);
    }

    const t0 = process.hrtime.bigint();
    const result = await local.replicate.to(`${base}/sales`, { batch_size: batchSize });
    const ns = process.hrtime.bigint() - t0;
    if (!result.ok || result.docs_written !== docs.length) {
      throw new Error(`replication wrote ${result.docs_written} of ${docs.length}: ${JSON.stringify(result.errors)}`);
    }
    const info = await (await fetch(`${base}/sales`)).json();
    if (info.doc_count !== docs.length) {
      throw new Error(`pouchdb-server holds ${info.doc_count} of ${docs.length} documents`);
    }
    await local.close();
    const us = ns / 1000n;
    console.log(JSON.stringify({
      docs: docs.length,
      ms: Number(ns / 1000000n),
      docs_per_s: Number((BigInt(docs.length) * 1000000n) / (us > 0n ? us : 1n)),
      batch_size: batchSize,
      pouchdb: require('pouchdb/package.json').version,
      pouchdb_server: require('pouchdb-server/package.json').version,
      node: process.version,
    }));
  } finally {
    server.kill('SIGTERM');
  }
}

main().catch((e) => {
  console.error(`replicate.js: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
