// Small text helpers that several modules need.
//
//   to_lower("Train.JPEG") == "train.jpeg"
#pragma once

#include <string>

namespace moco {

// ASCII lower case: file extensions, flag values, paths compared by hand.
std::string to_lower(std::string s);

}  // namespace moco
