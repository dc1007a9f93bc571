// The words the CLI and the Hub use for what holds a volume's snapshot space.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { snapshotHolders } from '../../src/wire/usage-text.js';

describe('snapshotHolders', () => {
  it('names snapshots, commits and saved working data apart, so the count matches the lists', () => {
    assert.equal(snapshotHolders({ snapshots: 3 }), '3 snapshot(s)');
    assert.equal(snapshotHolders({ snapshots: 4, commits: 4 }), '0 snapshot(s) and 4 commit(s)');
    assert.equal(snapshotHolders({ snapshots: 6, commits: 3, worktrees: 1 }), "2 snapshot(s), 3 commit(s) and 1 branch's saved data");
    assert.equal(snapshotHolders({ snapshots: 3, worktrees: 2 }), "1 snapshot(s) and 2 branches' saved data");
  });
});
