// What this deployment tells the console (GET /config.json, from the hub's flags).

export interface Config {
  /** A raster XYZ tile URL template for the base map; null: plain background (offline). */
  map_tiles: string | null;
}

let cached: Promise<Config> | null = null;

export function config(): Promise<Config> {
  cached ??= fetch("/config.json")
    .then((r) => (r.ok ? r.json() : { map_tiles: null }))
    .catch(() => ({ map_tiles: null }));
  return cached;
}
