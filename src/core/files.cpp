#include "core/files.h"

#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace moco {

void refuse_link(const std::string& path) {
  struct stat st {};
  TORCH_CHECK(::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode), path,
              " is a symbolic link; moco does not write through links in its output "
              "(remove it, or choose another --output)");
}

int open_new_file(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    TORCH_CHECK(!S_ISDIR(st.st_mode), "cannot write ", path, ": a folder is in the way");
    // unlink removes a link itself, not what it points to.
    TORCH_CHECK(::unlink(path.c_str()) == 0, "cannot replace ", path, ": ",
                std::strerror(errno));
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  TORCH_CHECK(fd >= 0, "cannot write ", path, ": ", std::strerror(errno));
  return fd;
}

}  // namespace moco
