/**
 * A Compose file (version 3.7, for Debian's docker-compose 1.29) with one service `db` on the bb image that
 * writes 2 MiB of random data and its sha256 to /data/blob(.sum) on its first start only, then stays up,
 * on the volume `pgdata` of DRIVER with the given driver options.
 */
export function blobComposeFile(driver: string, driverOpts: Record<string, string>): string {
  return [
    "version: '3.7'",
    'services:',
    '  db:',
    '    image: bb',
    '    network_mode: none',
    "    command: ['sh', '-c', 'test -f /data/blob || { dd if=/dev/urandom of=/data/blob bs=64k count=32 2>/dev/null && sha256sum /data/blob > /data/blob.sum; }; exec sleep 600']",
    '    stop_grace_period: 1s',
    '    volumes:',
    '      - pgdata:/data',
    'volumes:',
    '  pgdata:',
    `    driver: ${driver}`,
    '    driver_opts:',
    ...Object.entries(driverOpts).map(([k, v]) => `      ${k}: '${v}'`),
    '',
  ].join('\n');
}
