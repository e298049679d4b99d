#pragma once
// Pages the library writes, read back by an independent parser: Python's html.parser and
// xml.dom.minidom (python3 is part of the system scripts/setup prepares).
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

namespace testing {

namespace detail {

// Every element closed, in order (void elements and self-closed SVG shapes aside); prints the
// text of each <span class="token"> as a JSON list, or exits non-zero naming the first fault.
inline constexpr const char* html_checker = R"(import html.parser, json, sys
VOID = {"meta", "br", "img", "hr", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
class Checker(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open, self.tokens, self.token = [], [], None
    def handle_starttag(self, tag, attrs):
        if tag in VOID: return
        self.open.append(tag)
        if tag == "span" and ("class", "token") in attrs: self.token = ""
    def handle_startendtag(self, tag, attrs): pass
    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag: sys.exit(f"</{tag}> closes nothing open; open: {self.open}")
        self.open.pop()
        if tag == "span" and self.token is not None: self.tokens.append(self.token); self.token = None
    def handle_data(self, data):
        if self.token is not None: self.token += data
checker = Checker()
checker.feed(open(sys.argv[1], encoding="utf-8").read())
checker.close()
if checker.open: sys.exit(f"never closed: {checker.open}")
print(json.dumps(checker.tokens))
)";

inline constexpr const char* xml_checker = R"(import sys, xml.dom.minidom
xml.dom.minidom.parse(sys.argv[1])
print("[]")
)";

inline std::string run_python(const char* script, const std::string& document) {
    const auto dir = std::filesystem::temp_directory_path() / ("inputrep-html-check-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "check.py") << script;
    std::ofstream(dir / "document", std::ios::binary) << document;
    const std::string command = "python3 '" + (dir / "check.py").string() + "' '" + (dir / "document").string() +
                                "' > '" + (dir / "out").string() + "' 2>&1";
    const int status = std::system(command.c_str());
    std::stringstream out;
    out << std::ifstream(dir / "out").rdbuf();
    std::filesystem::remove_all(dir);
    BOOST_TEST_REQUIRE(status == 0,
                       "Python's parser rejects the document (python3 is needed for this check): " << out.str());
    return out.str();
}

}  // namespace detail

// The text of each <span class="token"> of a page that Python's html.parser finds well nested.
inline std::vector<std::string> html_token_texts(const std::string& page) {
    return nlohmann::json::parse(detail::run_python(detail::html_checker, page)).get<std::vector<std::string>>();
}

// Fails the test case unless `xml` is well-formed XML.
inline void check_well_formed_xml(const std::string& xml) { detail::run_python(detail::xml_checker, xml); }

}  // namespace testing
