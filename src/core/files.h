// Opening files inside an output folder without following links someone
// planted there: a link named checkpoint.pth.tar.tmp or moco.lock must
// not make a run write (or truncate) a file outside the folder.
//
//   const int fd = open_new_file(path + ".tmp");  // O_EXCL | O_NOFOLLOW
//   refuse_link(metrics_path);                    // before an ofstream opens it
#pragma once

#include <string>

namespace moco {

// Errors (naming `path`) when `path` is a symbolic link.
void refuse_link(const std::string& path);

// A fresh regular file for writing, created exclusively: a file or link
// left at `path` (by a killed run, or planted) is removed first, never
// written through. Returns the descriptor; errors name `path`.
int open_new_file(const std::string& path);

}  // namespace moco
