// The moco binary: see `moco --help`.
#include "cli/commands.h"

int main(int argc, char** argv) { return moco::cli::run(argc, argv); }
