#pragma once
// The part of libtorch the library uses: ATen tensors and operators, autograd's grad(), and the
// CPU generator for seeded initialisation. Not <torch/torch.h>: the nn/optim/data front end adds
// seconds of parsing to every translation unit and nothing here needs it.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/version.h>
