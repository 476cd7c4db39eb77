#!/usr/bin/env bash
# Fetch the UI's third-party browser files from the npm registry, once, into
# runwright_server/ui/static/vendor/ (committed; shipped in the wheel as package data).
# Neither CI nor a user runs this: it records how the committed files were obtained, and
# updates them when a version below is changed. Needs npm (only to download the tarballs).
set -euo pipefail
HTMX=2.0.11           # htmx.org: partial page updates from HTML attributes (BSD-2-Clause)
DAGRE=3.1.3           # @dagrejs/dagre: layered graph layout, graphlib bundled (MIT)
SWAGGER=5.35.0        # swagger-ui-dist: the /docs page, served locally (Apache-2.0)

here=$(cd "$(dirname "$0")/.." && pwd)
dest=$here/runwright_server/ui/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "htmx.org@$HTMX" "@dagrejs/dagre@$DAGRE" "swagger-ui-dist@$SWAGGER" >/dev/null
for f in *.tgz; do mkdir "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}"; done

rm -rf "$dest"; mkdir -p "$dest/htmx" "$dest/dagre" "$dest/swagger-ui"
cp "htmx.org-$HTMX/package/dist/htmx.min.js" "htmx.org-$HTMX/package/LICENSE" "$dest/htmx/"
cp "dagrejs-dagre-$DAGRE/package/dist/dagre.min.js" "dagrejs-dagre-$DAGRE/package/LICENSE" "$dest/dagre/"
cp "dagrejs-dagre-$DAGRE/package/dist/dagre.min.js.LEGAL.txt" "$dest/dagre/"
for f in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE; do
  cp "swagger-ui-dist-$SWAGGER/package/$f" "$dest/swagger-ui/"
done
# the bundle's trailing source-map comment names a file that is not shipped
sed -i '/^\/\/# sourceMappingURL=/d' "$dest/swagger-ui/swagger-ui-bundle.js" "$dest/htmx/htmx.min.js" "$dest/dagre/dagre.min.js"
cat > "$dest/VERSIONS" <<V
htmx.org $HTMX (npm), dist/htmx.min.js, BSD-2-Clause
@dagrejs/dagre $DAGRE (npm), dist/dagre.min.js (bundles @dagrejs/graphlib), MIT
swagger-ui-dist $SWAGGER (npm), swagger-ui-bundle.js + swagger-ui.css, Apache-2.0
fetched by plugins/runwright-server/scripts/vendor-ui-assets.sh
V
echo "vendored into $dest"
