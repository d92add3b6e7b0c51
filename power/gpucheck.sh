#!/bin/sh
# Issue 5 item 8: read real NVML values on a host with an NVIDIA GPU.
# Prints the device's power, energy counter, temperatures, throttle reasons
# and clocks, then the energy counter's delta over 3 s idle and, when a GPU
# load can be started, over 5 s busy. Record the output in power/README.md.
#
#   sh power/gpucheck.sh            # from the repository root
#   EDGE_GPU_BUSY='my-gpu-load' sh power/gpucheck.sh
#
# The default load uses PyTorch with CUDA if python3 has it.
set -eu
cd "$(dirname "$0")/.."
if [ -z "${EDGE_GPU_BUSY:-}" ] && python3 -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
	EDGE_GPU_BUSY='python3 -c "
import torch
a = torch.randn(8192, 8192, device=\"cuda\")
while True:
    a = (a @ a).tanh()
    torch.cuda.synchronize()
"'
	export EDGE_GPU_BUSY
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,power.draw,temperature.gpu --format=csv || true
CGO_ENABLED=1 go test -count=1 -run 'TestRealNVML$' -v ./power/nvml/ 2>&1 |
	grep -v -e 'warning:' -e 'note: declared here' -e 'cgo-gcc-prolog' -e 'DEPRECATED' -e '\^~' -e 'In file included'
