"""Generated protobuf and gRPC code; regenerate with scripts/gen-protos.sh, do not edit."""
