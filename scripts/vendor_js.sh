#!/usr/bin/env bash
# Copy MapLibre GL from node_modules (installed by `npm ci` from package-lock.json) into
# api/static/vendor/, where the dashboard loads it: no CDN at run time. The copy is not
# committed (.gitignore); `make install` runs `npm ci` and this script.
set -euo pipefail
cd "$(dirname "$0")/.."
src=node_modules/maplibre-gl/dist
dest=api/static/vendor
if [ ! -f "$src/maplibre-gl.mjs" ]; then
  echo "vendor_js: $src/maplibre-gl.mjs is missing: run 'npm ci' first" >&2
  exit 2
fi
rm -rf "$dest"
mkdir -p "$dest"
# The ES modules (maplibre-gl 6 ships no UMD bundle), the worker, the CSS and their source
# maps; the -dev builds and the TypeScript declarations are not needed by a browser.
for file in "$src"/*; do
  case "$(basename "$file")" in
    *-dev.mjs|*-dev.mjs.map|*.d.ts) ;;
    *) cp "$file" "$dest/" ;;
  esac
done
cp node_modules/maplibre-gl/LICENSE.txt "$dest/MAPLIBRE-LICENSE.txt"
version=$(node -p "require('./node_modules/maplibre-gl/package.json').version" 2>/dev/null || echo unknown)
echo "maplibre-gl $version" > "$dest/VERSION"
echo "vendor_js: maplibre-gl $version copied to $dest"
