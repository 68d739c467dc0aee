#!/usr/bin/env bash
# CI: build the documentation site (mkdocs.yml) offline, in strict mode: any warning fails the
# build, so a broken link or anchor, an unknown `:::` API identifier, a docstring argument
# that is not in the signature or a notebook cell that raises is an error. The notebooks are
# executed during the build (they are stored without outputs), unless SNNJAX_DOCS_EXECUTE=false
# (.ci/run, right after nbmake has run them). Installs the `docs` extra into
# the existing .venv (made by the README's install or test command) and builds into a
# temporary directory, removed afterwards; SNNJAX_DOCS_OUT=DIR keeps the site in DIR instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "no .venv here: run the README's install command first" >&2
  exit 1
fi
start=$SECONDS
.venv/bin/pip install -q -e '.[docs]'
echo "+ docs extra installed ($((SECONDS - start)) s)"
if [ -n "${SNNJAX_DOCS_OUT:-}" ]; then
  out=$SNNJAX_DOCS_OUT
else
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
# The notebooks' kernel is the venv's python; JAX on the CPU unless told otherwise, so the
# rendered outputs do not depend on the machine that builds them.
export PATH="$PWD/.venv/bin:$PATH"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
export NO_MKDOCS_2_WARNING=1
build=$SECONDS
.venv/bin/mkdocs build --strict --site-dir "$out"
echo "+ docs built in $((SECONDS - build)) s ($((SECONDS - start)) s in all)"
