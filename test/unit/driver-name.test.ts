import { it } from 'node:test';
import assert from 'node:assert/strict';
import { isOurDriver } from '../../src/docker/driver-name.js';

it("isOurDriver: the socket's name, a managed plugin's reference with a tag or registry path; not another driver", () => {
  for (const d of ['ferry', 'ferry:latest', 'ferry:0.2', 'registry.example:5000/ops/ferry:0.2', 'ops/ferry', 'ferry@sha256:ab']) assert.ok(isOurDriver(d, 'ferry'), d);
  for (const d of ['local', 'ferry2', 'ferry-dev:latest', 'ferry/other:1', 'myferry']) assert.ok(!isOurDriver(d, 'ferry'), d);
});
