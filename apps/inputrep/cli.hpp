#pragma once
// Command-line parsing shared by the inputrep program's translation units.
#include <algorithm>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace cli {

// A mistake in the command line itself: one line on stderr, exit code 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Option {
    std::string name;
    bool takes_value;
    std::string help;
};

class Args {
public:
    Args(std::vector<std::string> argv, const std::vector<Option>& spec) {
        for (std::size_t i = 0; i < argv.size(); ++i) {
            const auto& a = argv[i];
            if (!a.starts_with("--") || a == "--") {
                positional.push_back(a);
                continue;
            }
            auto name = a.substr(2);
            std::optional<std::string> inline_value;
            if (auto eq = name.find('='); eq != std::string::npos) inline_value = name.substr(eq + 1), name = name.substr(0, eq);
            auto it = std::find_if(spec.begin(), spec.end(), [&](const Option& o) { return o.name == name; });
            if (it == spec.end()) throw UsageError("unknown option --" + name);
            if (!it->takes_value) {
                if (inline_value) throw UsageError("option --" + name + " takes no value");
                values[name].push_back("");
                continue;
            }
            if (inline_value) values[name].push_back(*inline_value);
            else if (i + 1 < argv.size()) values[name].push_back(argv[++i]);
            else throw UsageError("option --" + name + " needs a value");
        }
    }
    bool has(const std::string& name) const { return values.contains(name); }
    std::string get(const std::string& name, const std::string& fallback = "") const {
        auto it = values.find(name);
        return it == values.end() ? fallback : it->second.back();
    }
    std::vector<std::string> all(const std::string& name) const {
        auto it = values.find(name);
        return it == values.end() ? std::vector<std::string>{} : it->second;
    }
    template <class T>
    std::optional<T> number(const std::string& name) const {
        if (!has(name)) return std::nullopt;
        auto text = get(name);
        try {
            std::size_t used = 0;
            T v;
            if constexpr (std::is_floating_point_v<T>) v = static_cast<T>(std::stod(text, &used));
            else v = static_cast<T>(std::stoll(text, &used));
            if (used != text.size()) throw std::invalid_argument(text);
            return v;
        } catch (const std::logic_error&) {
            throw UsageError("option --" + name + " expects a number, got \"" + text + "\"");
        }
    }
    std::vector<std::string> positional;

private:
    std::map<std::string, std::vector<std::string>> values;
};

inline void print_help(const std::string& usage, const std::vector<Option>& spec) {
    std::cout << "usage: " << usage << "\n\noptions:\n";
    for (auto& o : spec) {
        auto flag = "--" + o.name + (o.takes_value ? " VALUE" : "");
        std::cout << "  " << flag << std::string(flag.size() < 22 ? 22 - flag.size() : 1, ' ') << o.help << "\n";
    }
}

inline std::vector<Option> options_of(std::initializer_list<std::vector<Option>> groups) {
    std::vector<Option> all;
    for (auto& g : groups) all.insert(all.end(), g.begin(), g.end());
    return all;
}

}  // namespace cli
