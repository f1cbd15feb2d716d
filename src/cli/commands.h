// The `moco` command line: one binary, subcommands.
//
//   int main(int argc, char** argv) { return moco::cli::run(argc, argv); }
//
// User errors (bad flags, bad files, non-finite loss) print one clear line
// on stderr and return a non-zero exit code.
#pragma once

#include <set>
#include <string>

namespace moco::train {
struct PretrainOptions;
}

namespace moco::cli {

int run(int argc, char** argv);

// Applies a named preset to the options whose flags the user did not give
// (`given` holds flag names such as "--lr"). Presets: quick, cifar, v1, v2,
// none. Throws for an unknown name.
void apply_preset(const std::string& name, const std::set<std::string>& given,
                  train::PretrainOptions& o);

}  // namespace moco::cli
