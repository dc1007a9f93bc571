/**
 * The layers of src/, lowest first, and the rules `npm test` checks (test/unit/layers.test.ts): a module may
 * import its own directory and the layers below it, never a layer above or beside it, and no file may import
 * back a file that imports it (no cycle). docs/design.md explains the order.
 */
const LAYERS = [
  ['wire'], // the types that cross the API: imports nothing
  ['util', 'version.ts'], // plumbing: atomic writes, errors, the ticker, child processes, locks
  ['policy', 'jobs', 'fence', 'docker'], // schedules and retention; long operations; the fencing agent; the Docker Engine API
  ['catalog'], // the records of volumes on disk
  ['pools'], // where volumes live: directories, shares, snapshot trees
  ['cluster'], // shared pools: the shared catalog, heartbeats, attachments, rwo locks
  ['volumes'], // the volume lifecycle
  ['snapshots'], // snapshots, history, schedules
  ['backup'], // the backup engine and its service
  ['doctor'], // checks of the host, the daemon and the shares
  ['api', 'plugin'], // the control API and Docker's plugin protocol
  ['daemon'], // configuration and wiring
  ['cli'], // the ferry commands
  ['main.ts'], // the entry point
];

const path = (names) => `^src/(${names.map((n) => n.replace('.', '\\.')).join('|')})($|/)`;

const layerRules = LAYERS.flatMap((layer, i) => {
  const rules = [];
  const above = LAYERS.slice(i + 1).flat();
  if (above.length) {
    rules.push({
      name: `layer-${layer.join('+')}-imports-above`,
      comment: `${layer.join(', ')} may not import the layers above it (${above.join(', ')})`,
      severity: 'error',
      from: { path: path(layer) },
      to: { path: path(above) },
    });
  }
  for (const dir of layer.filter((d) => !d.endsWith('.ts'))) {
    const beside = layer.filter((d) => d !== dir);
    if (beside.length) {
      rules.push({
        name: `layer-${dir}-imports-beside`,
        comment: `${dir} may not import ${beside.join(', ')} (the same layer)`,
        severity: 'error',
        from: { path: path([dir]) },
        to: { path: path(beside) },
      });
    }
  }
  return rules;
});

module.exports = {

  forbidden: [
    { name: 'no-circular', comment: 'no file imports back a file that imports it', severity: 'error', from: { path: '^src/' }, to: { circular: true } },
    { name: 'no-unlayered', comment: 'every directory of src/ has a layer in .dependency-cruiser.cjs', severity: 'error', from: { path: '^src/', pathNot: path(LAYERS.flat()) }, to: {} },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    includeOnly: '^src/',
  },
};
