/**
 * Docker names a legacy plugin by its socket (`ferry`) and a managed one by its reference (`ferry:latest`,
 * `ferry:0.2`, `registry.example/ops/ferry:0.2`). True when `recorded` (a volume's or a mount's Driver in the
 * Engine API) is one of those names for the driver ferryd serves as `ours` (its socket's name).
 */
export function isOurDriver(recorded: string, ours: string): boolean {
  if (recorded === ours) return true;
  const last = recorded.slice(recorded.lastIndexOf('/') + 1).split('@')[0]!;
  return last === ours || last.startsWith(`${ours}:`);
}
