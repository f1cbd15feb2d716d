// Small text helpers that several modules need.
//
//   to_lower("Train.JPEG") == "train.jpeg"
//   shell_quote("it's") == "'it'\\''s'"      // pastes back into sh as one word
//   printable("pid 7\x1b[2J") == "pid 7?[2J"  // file content safe to log
#pragma once

#include <string>
#include <vector>

namespace moco {

// ASCII lower case: file extensions, flag values, paths compared by hand.
std::string to_lower(std::string s);

// Whether s ends with tail (file extensions: pass to_lower(path)).
bool ends_with(const std::string& s, const std::string& tail);

// A word as POSIX sh reads back as that word: unchanged when it holds
// nothing the shell treats specially, else single-quoted.
std::string shell_quote(const std::string& word);
// Words joined by spaces, each quoted.
std::string shell_line(const std::vector<std::string>& words);

// Text read from a file someone else may have written, made safe for a
// log line: control and non-ASCII bytes become '?', and it is cut at
// max_chars (marked with "...").
std::string printable(const std::string& text, size_t max_chars = 80);

}  // namespace moco
