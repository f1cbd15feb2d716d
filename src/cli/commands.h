// The `moco` command line: one binary, a subcommand for each row of the
// command registry (train/commands.h), every flag registered from the
// argument table (train/options.h).
//
//   int main(int argc, char** argv) { return moco::cli::run(argc, argv); }
//
// User errors (bad flags, bad files, non-finite loss) print one clear line
// on stderr and return a non-zero exit code.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "train/options.h"

namespace moco::cli {

int run(int argc, char** argv);

// `moco pretrain WORDS...` parsed as the command line would, presets and
// all, without running anything: the options and the keys given. Throws
// c10::Error naming a bad or unknown flag (moco sweep checks its points so).
train::PretrainOptions parse_pretrain(const std::vector<std::string>& words,
                                      std::set<std::string>* given = nullptr);

}  // namespace moco::cli
