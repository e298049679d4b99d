#pragma once
// One exception type for everything the library rejects: bad files, bad options, bad prompts,
// numerical failure. `what()` carries the context (file, tensor, option) so a researcher can act
// on the message without a debugger.
#include <stdexcept>
#include <string>
#include <string_view>
#include <sstream>

namespace inputrep {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
    Error(std::string_view context, std::string_view message)
        : std::runtime_error(std::string(context) + ": " + std::string(message)) {}
};

// fail("safetensors ", path, ": header length ", n, " exceeds the file") — streams its parts.
template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
    std::ostringstream s;
    (s << ... << parts);
    throw Error(s.str());
}

template <class... Parts>
void require(bool condition, const Parts&... parts) {
    if (!condition) fail(parts...);
}

}  // namespace inputrep
