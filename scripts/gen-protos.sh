#!/usr/bin/env bash
# Regenerate src/mlnode/runtime/_proto from the .proto subsets in src/mlnode/runtime/protos.
# Needs grpcio-tools (the dev extra). Usage: bash scripts/gen-protos.sh [python]
# The output is committed; rerun this after editing a .proto and bump the protobuf/grpcio
# lower bounds in pyproject.toml to the versions named in the generated version guards.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${PYTHON:-python3}}
SRC=src/mlnode/runtime/protos
OUT=src/mlnode/runtime/_proto

rm -f "$OUT"/*_pb2.py "$OUT"/*_pb2.pyi "$OUT"/*_pb2_grpc.py
"$PY" -m grpc_tools.protoc -I "$SRC" \
  --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
  "$SRC"/*.proto

rm -f "$OUT"/containerd_types_pb2_grpc.py  # no services in it

# protoc writes top-level imports ("import containerd_types_pb2"); make them package-relative.
sed -i -E 's/^import ([a-z0-9_]+_pb2) as /from . import \1 as /' "$OUT"/*_pb2.py "$OUT"/*_pb2.pyi "$OUT"/*_pb2_grpc.py

grep -h "ValidateProtobufRuntimeVersion" -A 6 "$OUT"/*_pb2.py | grep -E '^\s+[0-9]+,' | head -3 | tr -d ' \n'
echo " <- protobuf gencode version (major, minor, patch)"
grep -h "^GRPC_GENERATED_VERSION" "$OUT"/*_pb2_grpc.py | sort -u
