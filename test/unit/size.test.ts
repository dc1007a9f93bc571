// Sizes as people write them (`-o size=`, `ferry volume resize`): binary units like Docker, and clear refusals.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseSize, sizeText } from '../../src/util/size.js';
import { parseVolumeOptions } from '../../src/daemon/volume-options.js';

const GiB = 2 ** 30;

describe('sizes', () => {
  it('reads K, M, G, T as powers of 1024 (10G = 10 GiB), with or without B/iB, and plain bytes', () => {
    assert.equal(parseSize('10G'), 10 * GiB);
    assert.equal(parseSize('10g'), 10 * GiB);
    assert.equal(parseSize('10GiB'), 10 * GiB);
    assert.equal(parseSize('10GB'), 10 * GiB);
    assert.equal(parseSize('512M'), 512 * 2 ** 20);
    assert.equal(parseSize('2048K'), 2 * 2 ** 20);
    assert.equal(parseSize('1.5T'), 1.5 * 2 ** 40);
    assert.equal(parseSize('1048576'), 2 ** 20);
    assert.equal(parseSize('1048576B'), 2 ** 20);
    assert.deepEqual(parseVolumeOptions({ size: '10G' }), { size: 10 * GiB });
  });

  it('refuses nonsense, zero, too small and too large, saying what it accepts', () => {
    for (const bad of ['', 'abc', '10X', '-1G', '1.2.3G', 'G', '10 GG', '0x10', '1e9']) {
      assert.throws(() => parseVolumeOptions({ size: bad }), /option size=.*expected a size such as 10G, 512M, 1\.5T or a number of bytes/, bad);
    }
    assert.throws(() => parseVolumeOptions({ size: '0' }), /too small: at least 1M/);
    assert.throws(() => parseVolumeOptions({ size: '1000K' }), /too small: at least 1M/);
    assert.throws(() => parseVolumeOptions({ size: '99999999T' }), /too large/);
  });

  it('writes sizes back for people', () => {
    assert.equal(sizeText(10 * GiB), '10 GiB');
    assert.equal(sizeText(1.5 * 2 ** 20), '1.5 MiB');
    assert.equal(sizeText(1000), '1000 B');
  });
});
