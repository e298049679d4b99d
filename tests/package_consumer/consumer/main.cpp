// A program outside the source tree, built against the installed headers and package config.
#include <iostream>

#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/safetensors.hpp>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    auto config = inputrep::read_config(argv[1]);
    auto ckpt = inputrep::Checkpoint::open(argv[1]);
    std::cout << "blocks: " << config["n_layer"].get<int>() << ", tensors: " << ckpt.names().size() << "\n";
}
