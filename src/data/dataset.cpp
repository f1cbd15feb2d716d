#include "data/dataset.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <functional>
#include <memory>
#include <set>
#include <sstream>

#include "core/log.h"
#include "core/text.h"
#include "data/shards.h"

namespace fs = std::filesystem;

namespace moco::data {

namespace {

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
         (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::optional<std::string> first_existing(
    const fs::path& dir, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (fs::exists(dir / n)) return (dir / n).string();
  }
  return std::nullopt;
}

}  // namespace

// The whole file, inflated if gzip'd (gzread passes plain files through
// unchanged, so one path serves both). `expected_size` sees the first
// `header` bytes and returns the size the file must have, checked before
// anything more is inflated: a small .gz can inflate to gigabytes, so
// reading stops one byte past the expected size instead of at its end.
std::vector<uint8_t> read_maybe_gzip(
    const std::string& path, size_t header,
    const std::function<size_t(const std::vector<uint8_t>&)>& expected_size) {
  TORCH_CHECK(fs::exists(path), "dataset file not found: ", path);
  TORCH_CHECK(fs::is_regular_file(path), "expected a regular file, got ", path);
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"),
                                               &gzclose);
  TORCH_CHECK(f != nullptr, "cannot open ", path);
  std::vector<uint8_t> out;
  // Reads up to `limit` bytes in all (fewer at the end of the data).
  auto fill = [&](size_t limit) {
    while (out.size() < limit) {
      const size_t chunk = std::min<size_t>(limit - out.size(), 1 << 20);
      const size_t at = out.size();
      out.resize(at + chunk);
      const int n =
          gzread(f.get(), out.data() + at, static_cast<unsigned>(chunk));
      if (n < 0) {
        int errnum = 0;
        const char* msg = gzerror(f.get(), &errnum);
        TORCH_CHECK(false, "corrupt or truncated file ", path, ": ", msg);
      }
      out.resize(at + static_cast<size_t>(n));
      if (n == 0) return;
    }
  };
  fill(header);
  const size_t want = expected_size(out);
  fill(want + 1);
  TORCH_CHECK(out.size() <= want, "expected ", want,
              " bytes (from the header) ", "in ", path,
              ", but it holds more (trailing data, or not this ", "format?)");
  // zlib reports a gzip stream cut short only through gzerror at EOF.
  int errnum = 0;
  gzerror(f.get(), &errnum);
  TORCH_CHECK(errnum == Z_OK || errnum == Z_STREAM_END,
              "corrupt or truncated gzip file ", path);
  return out;
}

// n x h x w bytes, refused when the product does not fit (a damaged header).
size_t idx_payload(int64_t n, int64_t h, int64_t w, const std::string& path) {
  int64_t nh = 0, nhw = 0;
  TORCH_CHECK(!__builtin_mul_overflow(n, h, &nh) &&
                  !__builtin_mul_overflow(nh, w, &nhw) &&
                  nhw <= (int64_t{1} << 48),
              "IDX header of ", path, " claims ", n, "x", h, "x", w,
              " images, more bytes than any file holds (damaged header?)");
  return static_cast<size_t>(nhw);
}

ImageSet load_idx(const std::string& images_path,
                  const std::string& labels_path) {
  int64_t n = 0, h = 0, w = 0;
  size_t want = 0;
  const auto img =
      read_maybe_gzip(images_path, 16, [&](const std::vector<uint8_t>& head) {
        TORCH_CHECK(head.size() >= 16, "expected an IDX image file, got ",
                    head.size(), " bytes: ", images_path);
        const uint32_t magic = read_be32(head.data());
        TORCH_CHECK(magic == 0x00000803,
                    "expected IDX magic 0x00000803 (uint8, 3 dims), got 0x",
                    std::hex, magic, ": ", images_path);
        n = read_be32(head.data() + 4);
        h = read_be32(head.data() + 8);
        w = read_be32(head.data() + 12);
        TORCH_CHECK(n > 0 && h > 0 && w > 0,
                    "expected a non-empty IDX image file, ", "got ", n, "x", h,
                    "x", w, ": ", images_path);
        want = 16 + idx_payload(n, h, w, images_path);
        return want;
      });
  TORCH_CHECK(img.size() == want, "IDX file is truncated:", " expected ", want,
              " bytes for ", n, "x", h, "x", w, ", got ", img.size(), ": ",
              images_path);
  ImageSet set;
  set.images = torch::from_blob(const_cast<uint8_t*>(img.data()) + 16,
                                {n, 1, h, w}, torch::kUInt8)
                   .clone();
  set.description = "IDX " + images_path;
  if (!labels_path.empty()) {
    const auto lab =
        read_maybe_gzip(labels_path, 8, [&](const std::vector<uint8_t>& head) {
          TORCH_CHECK(
              head.size() >= 8 && read_be32(head.data()) == 0x00000801,
              "expected an IDX label file (magic 0x00000801): ", labels_path);
          const int64_t nl = read_be32(head.data() + 4);
          TORCH_CHECK(nl == n, "expected ", n, " labels to match ", images_path,
                      ", got ", nl, ": ", labels_path);
          return 8 + static_cast<size_t>(n);
        });
    TORCH_CHECK(lab.size() == 8 + static_cast<size_t>(n),
                "IDX label file is truncated: expected ", 8 + n, " bytes, got ",
                lab.size(), ": ", labels_path);
    set.labels = torch::from_blob(const_cast<uint8_t*>(lab.data()) + 8, {n},
                                  torch::kUInt8)
                     .to(torch::kInt64);
    set.num_classes = set.labels.max().item<int64_t>() + 1;
    // IDX files carry no class names; Fashion-MNIST's (torchvision's
    // FashionMNIST.classes) are known by the path Debian and the
    // distributors give it.
    if (to_lower(images_path).find("fashion") != std::string::npos && set.num_classes <= 10) {
      set.classes = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    }
  }
  return set;
}

ImageSet load_cifar(const std::vector<std::string>& files, bool cifar100) {
  const int64_t label_bytes = cifar100 ? 2 : 1;
  const int64_t record = label_bytes + 3 * 32 * 32;
  std::vector<torch::Tensor> images, labels;
  for (const auto& path : files) {
    // No header to check: bounded by the largest CIFAR file (CIFAR-100's
    // 50,000-image train file), so a .gz bomb stops there.
    const auto bytes = read_maybe_gzip(
        path, 0, [&](const std::vector<uint8_t>&) { return 50000 * record; });
    TORCH_CHECK(!bytes.empty() && bytes.size() % record == 0,
                "expected a CIFAR-", cifar100 ? "100" : "10",
                " binary file of whole ", record, "-byte records, got ",
                bytes.size(), " bytes: ", path);
    const int64_t n = static_cast<int64_t>(bytes.size()) / record;
    auto all = torch::from_blob(const_cast<uint8_t*>(bytes.data()),
                                {n, record}, torch::kUInt8);
    images.push_back(
        all.slice(1, label_bytes, record).reshape({n, 3, 32, 32}).clone());
    labels.push_back(all.select(1, label_bytes - 1).to(torch::kInt64));
  }
  ImageSet set;
  set.images = torch::cat(images);
  set.labels = torch::cat(labels);
  set.num_classes = cifar100 ? 100 : 10;
  TORCH_CHECK(set.labels.max().item<int64_t>() < set.num_classes,
              "CIFAR label out of range in ", files.front());
  set.description = std::string(cifar100 ? "CIFAR-100 " : "CIFAR-10 ") +
                    fs::path(files.front()).parent_path().string();
  return set;
}

namespace {

// What a folder walk found.
struct Scan {
  std::vector<std::string> files;
  std::vector<int64_t> labels;
  int64_t jpeg = 0, png = 0, skipped = 0;
  std::vector<std::string> skipped_examples;
  // Folders already listed, by device and inode: a symlinked folder is
  // followed once, so a link to itself or to an ancestor ends the walk
  // instead of looping, and no folder is listed twice under two paths
  // (which would give its images another class's label).
  std::set<std::pair<dev_t, ino_t>> visited;

  // False (and a warning) when `dir` was listed before.
  bool visit(const fs::path& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return false;
    if (visited.insert({st.st_dev, st.st_ino}).second) return true;
    log_warn("skipping ", dir.string(), ": a link to a folder listed already ",
             "(a symlink loop?)");
    return false;
  }

  void add_skipped(const std::string& path) {
    ++skipped;
    if (skipped_examples.size() < 3) skipped_examples.push_back(path);
  }
  void add(const std::string& path, int64_t label) {
    const auto ext = to_lower(fs::path(path).extension().string());
    (ext == ".png" ? png : jpeg)++;
    files.push_back(path);
    labels.push_back(label);
  }
};

// All files under dir in torchvision's order: folders by path, names sorted
// within a folder (sorted(os.walk(dir, followlinks=True)), then
// sorted(fnames)), each real folder once. Only regular files (after links)
// count: FIFOs, sockets and devices are left out, since opening a FIFO blocks.
void walk(const fs::path& dir, int64_t label, Scan& scan) {
  std::vector<std::pair<std::string, std::string>> found;
  std::vector<fs::path> todo = {dir};
  while (!todo.empty()) {
    const fs::path d = std::move(todo.back());
    todo.pop_back();
    std::error_code ec;
    fs::directory_iterator it(d, fs::directory_options::skip_permission_denied,
                              ec);
    TORCH_CHECK(!ec, "cannot list ", d.string(), ": ", ec.message());
    std::vector<fs::directory_entry> entries;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      TORCH_CHECK(!ec, "cannot list ", d.string(), ": ", ec.message());
      entries.push_back(*it);
    }
    // Sorted, so which of two paths to one folder is kept does not depend
    // on the file system's order.
    std::sort(entries.begin(), entries.end());
    std::vector<fs::path> subdirs;
    for (const auto& e : entries) {
      std::error_code fec;
      if (e.is_directory(fec)) {
        if (scan.visit(e.path())) subdirs.push_back(e.path());
      } else if (e.is_regular_file(fec)) {
        found.emplace_back(d.string(), e.path().filename().string());
      }
    }
    todo.insert(todo.end(), subdirs.rbegin(), subdirs.rend());
  }
  std::sort(found.begin(), found.end());
  for (const auto& [parent, name] : found) {
    const auto path = (fs::path(parent) / name).string();
    if (has_image_extension(name)) {
      scan.add(path, label);
    } else {
      scan.add_skipped(path);
    }
  }
}

ImageSet from_scan(Scan&& scan, bool labelled, int64_t channels,
                   const std::string& description) {
  ImageSet set;
  set.files = std::move(scan.files);
  set.file_channels = channels;
  if (labelled) {
    set.labels = torch::tensor(scan.labels, torch::kInt64);
    set.num_classes = set.labels.numel() > 0
                          ? set.labels.max().item<int64_t>() + 1
                          : 0;
  }
  set.description = description;
  std::ostringstream os;
  os << set.files.size() << " images";
  if (labelled) os << ", " << set.num_classes << " classes";
  os << " (JPEG " << scan.jpeg << ", PNG " << scan.png << ")";
  if (scan.skipped > 0) {
    os << ", skipped " << scan.skipped
       << (scan.skipped == 1 ? " file that is not" : " files that are not") << " .jpg/.jpeg/.png"
       << " (e.g. " << scan.skipped_examples.front() << ")";
  }
  set.summary = os.str();
  return set;
}

// DIR/<class>/... when every image lies in a subfolder; otherwise all the
// images of the tree, unlabelled.
ImageSet scan_folder(const fs::path& dir, int64_t channels) {
  TORCH_CHECK(fs::is_directory(dir), "expected an image folder, got ",
              dir.string());
  bool top_level_images = false;
  std::vector<std::string> classes;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::error_code ec;
    if (e.is_directory(ec)) {
      classes.push_back(e.path().filename().string());
    } else if (e.is_regular_file(ec) &&
               has_image_extension(e.path().filename().string())) {
      top_level_images = true;
    }
  }
  Scan scan;
  scan.visit(dir);
  ImageSet set;
  if (top_level_images || classes.empty()) {
    walk(dir, -1, scan);
    set = from_scan(std::move(scan), false, channels,
                    "image folder " + dir.string());
  } else {
    std::sort(classes.begin(), classes.end());
    // Every class folder is claimed before any is walked, so a link from one
    // class into another is not followed (its images keep their own label).
    std::vector<bool> own(classes.size());
    for (size_t c = 0; c < classes.size(); ++c)
      own[c] = scan.visit(dir / classes[c]);
    for (size_t c = 0; c < classes.size(); ++c) {
      if (!own[c]) continue;
      const auto before = scan.files.size();
      walk(dir / classes[c], static_cast<int64_t>(c), scan);
      if (scan.files.size() == before) {
        log_warn("class folder with no images: ", (dir / classes[c]).string());
      }
    }
    for (const auto& e : fs::directory_iterator(dir)) {
      std::error_code ec;
      if (e.is_regular_file(ec)) scan.add_skipped(e.path().string());
    }
    set = from_scan(std::move(scan), true, channels,
                    "ImageFolder " + dir.string());
    set.num_classes = static_cast<int64_t>(classes.size());
    set.classes = classes;
  }
  TORCH_CHECK(set.size() > 0, "no images (.jpg .jpeg .png) found in ",
              dir.string(), " (searched recursively)");
  return set;
}

ImageSet read_file_list(const fs::path& list, int64_t channels, bool strict) {
  std::ifstream in(list);
  TORCH_CHECK(in, "cannot open file list ", list.string());
  const fs::path base = list.parent_path();
  Scan scan;
  int64_t with_label = 0, without_label = 0, missing = 0;
  std::string first_missing, line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
      line.pop_back();
    }
    const auto start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    line = line.substr(start);
    // "path label": the label is the last field when it is an integer, so
    // paths with spaces still work.
    std::string path = line;
    int64_t label = -1;
    const auto sp = line.find_last_of(" \t");
    if (sp != std::string::npos) {
      const std::string tail = line.substr(sp + 1);
      if (!tail.empty() && std::all_of(tail.begin(), tail.end(), ::isdigit)) {
        TORCH_CHECK(tail.size() <= 9,
                    "expected a class label below 10^9 on line ", line_no,
                    " of ", list.string(), ", got ", tail);
        label = std::stoll(tail);
        path = line.substr(0, line.find_last_not_of(" \t", sp) + 1);
      }
    }
    (label >= 0 ? with_label : without_label)++;
    TORCH_CHECK(with_label == 0 || without_label == 0,
                "file list mixes lines with and without a label (line ",
                line_no, "): ", list.string());
    fs::path p(path);
    if (p.is_relative()) p = base / p;
    if (!fs::exists(p)) {
      TORCH_CHECK(!strict, "--strict-data: line ", line_no, " of ",
                  list.string(), " names a missing file: ", p.string());
      if (missing++ == 0) first_missing = p.string();
      continue;
    }
    if (!has_image_extension(p.filename().string())) {
      scan.add_skipped(p.string());
      continue;
    }
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) {
      // A FIFO would block the reader forever; a folder is not an image.
      TORCH_CHECK(!strict, "--strict-data: line ", line_no, " of ",
                  list.string(), " names ", p.string(),
                  ", which is not a regular file");
      log_warn("skipping ", p.string(), " (line ", line_no, " of ",
               list.string(),
               "): not a regular file (a folder, FIFO or device)");
      continue;
    }
    scan.add(p.string(), label);
  }
  if (missing > 0) {
    log_warn(missing, " files named in ", list.string(),
             " do not exist and are skipped (first: ", first_missing, ")");
  }
  TORCH_CHECK(!scan.files.empty(), "no readable image paths in file list ",
              list.string(), missing > 0 ? " (all listed files are missing)" : "");
  auto set = from_scan(std::move(scan), with_label > 0, channels,
                       "file list " + list.string());
  if (missing > 0) set.summary += ", " + std::to_string(missing) + " missing";
  return set;
}

// 3 -> 1 with torchvision's weights, 1 -> 3 by repetition.
void convert_channels(ImageSet& set, int64_t channels) {
  if (channels == 0 || set.channels() == channels) return;
  if (set.on_disk()) {
    set.file_channels = channels;
    return;
  }
  if (channels == 3) {
    set.images = set.images.expand({-1, 3, -1, -1}).contiguous();
  } else {
    auto f = set.images.to(torch::kFloat32);
    set.images = (f.select(1, 0) * 0.2989 + f.select(1, 1) * 0.587 +
                  f.select(1, 2) * 0.114)
                     .round_()
                     .clamp_(0, 255)
                     .to(torch::kUInt8)
                     .unsqueeze(1)
                     .contiguous();
  }
}

Splits open_any(const std::string& path, const OpenOptions& options);

}  // namespace

bool has_image_extension(const std::string& path) {
  const auto ext = to_lower(fs::path(path).extension().string());
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

Splits load_stl10(const std::string& dir_str) {
  const fs::path dir(dir_str);
  // 3 x 96 x 96 per image, each channel stored column by column (MATLAB
  // order), hence the transpose; labels are 1..10.
  auto read_x = [&](const std::string& name) {
    const auto path = (dir / name).string();
    TORCH_CHECK(fs::exists(path), "STL-10 folder is missing ", path);
    const auto bytes = static_cast<int64_t>(fs::file_size(path));
    const int64_t record = 3 * 96 * 96;
    TORCH_CHECK(bytes > 0 && bytes % record == 0,
                "expected STL-10 images of ", record, " bytes each, got ", bytes,
                " bytes: ", path);
    auto t = torch::empty({bytes / record, 3, 96, 96}, torch::kUInt8);
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(t.data_ptr<uint8_t>()), bytes);
    TORCH_CHECK(in.gcount() == bytes, "short read: ", path);
    return t.transpose(2, 3).contiguous();
  };
  auto read_y = [&](const std::string& name, int64_t n) {
    const auto path = (dir / name).string();
    const auto bytes = read_maybe_gzip(
        path, 0,
        [&](const std::vector<uint8_t>&) { return static_cast<size_t>(n); });
    TORCH_CHECK(static_cast<int64_t>(bytes.size()) == n, "expected ", n,
                " STL-10 labels, got ", bytes.size(), ": ", path);
    auto y = torch::from_blob(const_cast<uint8_t*>(bytes.data()), {n},
                              torch::kUInt8)
                 .to(torch::kInt64) - 1;
    TORCH_CHECK(y.min().item<int64_t>() >= 0 && y.max().item<int64_t>() < 10,
                "expected STL-10 labels 1..10: ", path);
    return y;
  };
  auto labelled = [&](const std::string& split) {
    ImageSet set;
    set.images = read_x(split + "_X.bin");
    set.labels = read_y(split + "_y.bin", set.images.size(0));
    set.num_classes = 10;
    set.description = "STL-10 " + split + " " + dir.string();
    return set;
  };
  Splits s;
  const bool has_train = fs::exists(dir / "train_X.bin");
  if (has_train) s.train_labelled = labelled("train");
  if (fs::exists(dir / "test_X.bin")) s.test = labelled("test");
  if (fs::exists(dir / "unlabeled_X.bin")) {
    s.train.images = read_x("unlabeled_X.bin");
    s.train.description = "STL-10 unlabeled";
    if (has_train) {
      s.train.images = torch::cat({s.train.images, s.train_labelled->images});
      s.train.description += "+train";
    }
    s.train.description += " " + dir.string();
  } else {
    TORCH_CHECK(has_train, "STL-10 folder has neither unlabeled_X.bin nor ",
                "train_X.bin: ", dir.string());
    s.train = *s.train_labelled;
    s.train_labelled.reset();
  }
  return s;
}

int64_t ImageSet::size() const {
  if (images.defined()) return images.size(0);
  if (shards) return shards->samples;
  return static_cast<int64_t>(files.size());
}

namespace {

// Tar shards: counted from their headers, streamed by the loader.
ImageSet open_shard_set(const std::string& spec, int64_t channels, bool strict) {
  auto list = std::make_shared<ShardList>(open_shards(spec, strict));
  TORCH_CHECK(list->samples > 0, "no samples with an image (.jpg .jpeg .png) in the ",
              list->shards.size(), " shards of ", spec);
  for (const auto& d : list->damaged) log_warn("damaged shard: ", d, "; its samples before the damage are used");
  ImageSet set;
  set.file_channels = channels;
  set.description = "tar shards " + spec;
  std::ostringstream os;
  os << list->samples << " samples in " << list->shards.size() << " shard"
     << (list->shards.size() == 1 ? "" : "s") << " (headers read in " << std::fixed
     << std::setprecision(2) << list->scan_seconds << " s";
  if (list->labelled > 0) os << "; " << list->labelled << " with a .cls/.json label";
  if (list->ignored_members > 0) os << "; " << list->ignored_members << " other members ignored";
  if (!list->damaged.empty()) os << "; " << list->damaged.size() << " damaged";
  os << ")";
  set.summary = os.str();
  set.shards = std::move(list);
  return set;
}

}  // namespace

Splits open_dataset(const std::string& path, const OpenOptions& options) {
  TORCH_CHECK(options.channels() == 0 || options.channels() == 1 ||
                  options.channels() == 3,
              "expected --channels 1 or 3, got ", options.channels());
  Splits s = open_any(path, options);
  for (ImageSet* set : {&s.train, s.test ? &*s.test : nullptr,
                        s.train_labelled ? &*s.train_labelled : nullptr}) {
    if (!set) continue;
    set->max_image_pixels = options.max_image_pixels();
    convert_channels(*set, options.channels());
    if (set->summary.empty()) {
      set->summary = std::to_string(set->size()) + " images " +
                     std::to_string(set->channels()) + "x" +
                     std::to_string(set->height()) + "x" +
                     std::to_string(set->width()) +
                     (set->labelled()
                          ? ", " + std::to_string(set->num_classes) + " classes"
                          : "");
    }
  }
  return s;
}

namespace {

Splits open_any(const std::string& path, const OpenOptions& options) {
  if (is_shard_spec(path)) {
    Splits s;
    s.train = open_shard_set(path, options.channels() == 0 ? 3 : options.channels(),
                             options.strict());
    return s;
  }
  TORCH_CHECK(fs::exists(path), "dataset not found: ", path);
  fs::path dir(path);
  const int64_t file_channels = options.channels() == 0 ? 3 : options.channels();
  if (!fs::is_directory(dir)) {
    Splits s;
    s.train = read_file_list(dir, file_channels, options.strict());
    return s;
  }
  if (fs::exists(dir / "cifar-10-batches-bin")) dir /= "cifar-10-batches-bin";
  if (fs::exists(dir / "cifar-100-binary")) dir /= "cifar-100-binary";

  if (auto train = first_existing(
          dir, {"train-images-idx3-ubyte.gz", "train-images-idx3-ubyte",
                "train-images.idx3-ubyte"})) {
    auto train_labels = first_existing(
        dir, {"train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte",
              "train-labels.idx1-ubyte"});
    Splits s;
    s.train = load_idx(*train, train_labels.value_or(""));
    auto test = first_existing(
        dir, {"t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte",
              "t10k-images.idx3-ubyte"});
    auto test_labels = first_existing(
        dir, {"t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte",
              "t10k-labels.idx1-ubyte"});
    if (test && test_labels) s.test = load_idx(*test, *test_labels);
    return s;
  }
  if (fs::exists(dir / "data_batch_1.bin")) {
    std::vector<std::string> files;
    for (int i = 1; i <= 5; ++i) {
      const auto f = dir / ("data_batch_" + std::to_string(i) + ".bin");
      TORCH_CHECK(fs::exists(f), "CIFAR-10 folder is missing ", f.string());
      files.push_back(f.string());
    }
    Splits s;
    s.train = load_cifar(files, false);
    if (fs::exists(dir / "test_batch.bin")) {
      s.test = load_cifar({(dir / "test_batch.bin").string()}, false);
    }
    return s;
  }
  if (fs::exists(dir / "train.bin")) {
    Splits s;
    s.train = load_cifar({(dir / "train.bin").string()}, true);
    if (fs::exists(dir / "test.bin")) {
      s.test = load_cifar({(dir / "test.bin").string()}, true);
    }
    return s;
  }
  if (fs::exists(dir / "stl10_binary")) dir /= "stl10_binary";
  if (fs::exists(dir / "unlabeled_X.bin") || fs::exists(dir / "train_X.bin")) {
    return load_stl10(dir.string());
  }
  // The official layout: DIR/train/<class>/..., DIR/val/<class>/...
  if (fs::is_directory(dir / "train")) {
    Splits s;
    s.train = scan_folder(dir / "train", file_channels);
    for (const char* test_name : {"val", "test"}) {
      if (fs::is_directory(dir / test_name)) {
        s.test = scan_folder(dir / test_name, file_channels);
        break;
      }
    }
    return s;
  }
  Splits s;
  s.train = scan_folder(dir, file_channels);
  return s;
}

}  // namespace

const ImageSet& split_named(const Splits& splits, const std::string& split,
                            const std::string& data) {
  TORCH_CHECK(split == "train" || splits.test, "--split test: ", data, " has no test split");
  return split == "train" ? splits.train : *splits.test;
}

void require_indexed(const ImageSet& set, const std::string& command) {
  TORCH_CHECK(!set.streamed(), "moco ", command, ": ", set.description,
              " are streamed, not indexed; ", command, " reads a folder, a list or a "
              "binary dataset (shards are for pretrain and bench-data)");
}

void require_labels(const Splits& s, const std::string& data,
                    const std::string& command) {
  require_indexed(s.train, command);
  TORCH_CHECK(s.labelled_train().labelled(), command,
              " needs labelled training images, but ", data,
              " has no labels (an unlabelled folder or a list without labels);"
              " use DIR/train/<class>/... and DIR/val/<class>/...");
  TORCH_CHECK(s.test && s.test->labelled(), command,
              " needs a labelled test split, but ", data, " has none (IDX: "
              "t10k-*, CIFAR: test_batch.bin, image folders: DIR/val/<class>/)");
}

}  // namespace moco::data
