// The moco binary: see `moco --help`.
#include "cli/commands.h"
#include "core/malloc_tuning.h"
#include "core/signals.h"

int main(int argc, char** argv) {
  moco::tune_malloc_for_training();
  moco::install_stop_handlers();
  return moco::cli::run(argc, argv);
}
