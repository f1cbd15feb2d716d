#include "data/shards.h"

#include <archive.h>
#include <archive_entry.h>
#include <c10/util/Exception.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/files.h"
#include "core/log.h"
#include "core/text.h"
#include "data/dataset.h"
#include "data/image_decode.h"
#include "io/checkpoint.h"

namespace moco::data {

namespace fs = std::filesystem;

namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

bool is_image_ext(const std::string& ext) {
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

bool is_tar_name(const std::string& name) {
  const auto l = to_lower(name);
  return ends_with(l, ".tar") || ends_with(l, ".tar.gz") || ends_with(l, ".tgz");
}

// More than any dataset's shards (LAION-5B is ~600,000 of 10,000): a
// pattern past it is a typo, refused before a string is built.
constexpr size_t kMaxShards = 1'000'000;

// One {..} group of a pattern: a range (lo..hi, zero-padded to width) or
// alternatives, with the text before it.
struct BraceGroup {
  std::string head;
  std::vector<std::string> words;  // alternatives (empty for a range)
  int64_t lo = 0, hi = -1;
  size_t width = 0;
  size_t size() const { return words.empty() ? static_cast<size_t>(hi - lo + 1) : words.size(); }
  std::string choice(size_t i) const {
    if (!words.empty()) return words[i];
    return fmt::format("{:0{}d}", lo + static_cast<int64_t>(i), width);
  }
};

// Iterative, and the count is known before anything is expanded: a
// pattern of 10^4 groups neither recurses 10^4 deep nor copies its tail at
// each level.
std::vector<std::string> expand_pattern(const std::string& whole) {
  std::vector<BraceGroup> groups;
  size_t at = 0;
  size_t count = 1;
  while (true) {
    const auto open = whole.find('{', at);
    const auto stray = whole.find('}', at);
    TORCH_CHECK(stray == std::string::npos || (open != std::string::npos && open < stray),
                "shard pattern ", whole, ": '}' without '{'");
    if (open == std::string::npos) break;
    const auto close = whole.find('}', open);
    TORCH_CHECK(close != std::string::npos, "shard pattern ", whole, ": '{' without '}'");
    const std::string body = whole.substr(open + 1, close - open - 1);
    TORCH_CHECK(body.find('{') == std::string::npos, "shard pattern ", whole,
                ": nested braces are not supported");
    BraceGroup g;
    g.head = whole.substr(at, open - at);
    const auto dots = body.find("..");
    if (dots != std::string::npos) {
      const std::string a = body.substr(0, dots), b = body.substr(dots + 2);
      TORCH_CHECK(all_digits(a) && all_digits(b), "shard pattern ", whole, ": {", body,
                  "} is not a range of whole numbers like {000000..000146}");
      TORCH_CHECK(a.size() <= 18 && b.size() <= 18, "shard pattern ", whole,
                  ": numbers too long in {", body, "}");
      g.lo = std::stoll(a);
      g.hi = std::stoll(b);
      TORCH_CHECK(g.lo <= g.hi, "shard pattern ", whole, ": {", body, "} counts down");
      TORCH_CHECK(static_cast<size_t>(g.hi - g.lo) < kMaxShards, "shard pattern ", whole,
                  " names more than ", kMaxShards, " shards");
      // Zero-padded as written: {000..012} -> 000, 001, ..., 012.
      g.width = a.size() > 1 && a[0] == '0' ? a.size() : 0;
    } else {
      TORCH_CHECK(!body.empty(), "shard pattern ", whole, ": empty braces");
      size_t start = 0;
      while (true) {
        const auto comma = body.find(',', start);
        g.words.push_back(body.substr(start, comma - start));
        TORCH_CHECK(g.words.size() <= kMaxShards, "shard pattern ", whole, " names more than ",
                    kMaxShards, " shards");
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
    // Checked before multiplying: count * size stays below 10^12.
    TORCH_CHECK(count * g.size() <= kMaxShards, "shard pattern ", whole, " names more than ",
                kMaxShards, " shards");
    count *= g.size();
    groups.push_back(std::move(g));
    at = close + 1;
  }
  const std::string tail = whole.substr(at);
  // Each name is at most the pattern's length plus the range digits: the
  // bytes are bounded before they are built too.
  TORCH_CHECK(count * (whole.size() + 20) <= (size_t{1} << 28), "shard pattern ",
              whole.substr(0, 200), whole.size() > 200 ? "..." : "", " expands to ", count,
              " names of up to ", whole.size(), " characters, too many to list");
  // Each group's choices once, and the names built as an odometer that
  // keeps the prefix of every group: a step rebuilds only the groups that
  // turned, so a name costs its last group and tail, not all its groups.
  const size_t n = groups.size();
  std::vector<std::vector<std::string>> choices(n);
  for (size_t g = 0; g < n; ++g) {
    for (size_t i = 0; i < groups[g].size(); ++i) choices[g].push_back(groups[g].choice(i));
  }
  std::vector<size_t> digit(n, 0);
  std::vector<std::string> prefix(n + 1);
  const auto rebuild = [&](size_t from) {
    for (size_t g = from; g < n; ++g) prefix[g + 1] = prefix[g] + groups[g].head + choices[g][digit[g]];
  };
  rebuild(0);
  std::vector<std::string> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    out.push_back(prefix[n] + tail);
    size_t g = n;
    while (g > 0 && ++digit[g - 1] == groups[g - 1].size()) digit[--g] = 0;
    if (g == 0) break;
    rebuild(g - 1);
  }
  return out;
}

// The first non-empty, non-comment line of a small text file.
std::string first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  for (int i = 0; i < 100 && std::getline(in, line); ++i) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty() && line[0] != '#') return line;
  }
  return "";
}

struct ShardPaths {
  std::vector<std::string> paths;
  std::string manifest;           // the folder's manifest, if any
  int64_t manifest_samples = -1;  // what it says was written
};

ShardPaths just(std::vector<std::string> paths) {
  ShardPaths p;
  p.paths = std::move(paths);
  return p;
}

std::string shard_pattern(const std::string& dir, const std::string& prefix, size_t count) {
  if (count == 1) return (fs::path(dir) / fmt::format("{}-{:06d}.tar", prefix, 0)).string();
  return (fs::path(dir) / fmt::format("{}-{{{:06d}..{:06d}}}.tar", prefix, 0, count - 1))
      .string();
}

// A FIFO or device named as a shard would block the header scan forever
// (or read without end): only regular files (links to them) are shards.
void require_regular_shard(const std::string& path, const fs::file_status& st,
                           const std::string& spec) {
  TORCH_CHECK(fs::is_regular_file(st), spec, ": shard ", path, " is not a regular file (",
              fs::is_directory(st) ? "a folder" : fs::is_fifo(st) ? "a FIFO" : "a special file",
              ")");
}

bool is_manifest_name(const std::string& name) { return ends_with(name, kManifestSuffix); }

// The shards a folder holds: those of the one `moco shard` write whose
// manifest is there, or, with no manifest, every .tar in it. A folder with
// an unfinished shard, or the shards of two writes (a train and a test
// split), is refused: streaming it would train on a part, or a mix.
ShardPaths folder_shards(const std::string& spec) {
  std::vector<std::string> tars, unfinished, manifests;
  for (const auto& e : fs::directory_iterator(spec)) {
    const auto name = e.path().filename().string();
    if (!e.is_regular_file()) continue;
    if (is_tar_name(name)) tars.push_back(name);
    if (ends_with(to_lower(name), ".tar.tmp")) unfinished.push_back(name);
    if (is_manifest_name(name)) manifests.push_back(name);
  }
  std::sort(tars.begin(), tars.end());
  std::sort(manifests.begin(), manifests.end());
  const fs::path dir(spec);
  TORCH_CHECK(unfinished.empty(), spec, " holds an unfinished shard, ", unfinished.front(),
              ": a `moco shard` into it was stopped before it finished, so its shards are a "
              "part of the data; remove them and write them again");
  ShardPaths out;
  if (manifests.empty()) {
    TORCH_CHECK(!tars.empty(), "no .tar shards in ", spec);
    log_warn(spec, ": no PREFIX", kManifestSuffix, " from `moco shard` here, so its ", tars.size(),
             " shard", tars.size() == 1 ? "" : "s",
             " are taken as they are (a write cut short would go unnoticed)");
    for (const auto& t : tars) out.paths.push_back((dir / t).string());
    return out;
  }
  std::vector<ShardManifest> writes;
  for (const auto& m : manifests) writes.push_back(read_shard_manifest((dir / m).string()));
  if (writes.size() > 1) {
    std::string which;
    for (const auto& w : writes) {
      which += fmt::format("{}{} ({} shards, {} samples of {})", which.empty() ? "" : "; ",
                           w.prefix, w.shards.size(), w.samples, printable(w.source, 120));
    }
    TORCH_CHECK(false, spec, " holds the shards of ", writes.size(), " writes: ", which,
                ". Pass one as DATA, e.g. ", shard_pattern(spec, writes[0].prefix,
                                                         writes[0].shards.size()));
  }
  const auto& w = writes[0];
  std::set<std::string> listed;
  for (const auto& sh : w.shards) {
    const auto path = dir / sh.first;
    std::error_code ec;
    TORCH_CHECK(fs::exists(fs::status(path, ec)), spec, ": shard ", sh.first, " of ",
                manifests[0], " is missing (", w.shards.size(), " written)");
    require_regular_shard(path.string(), fs::status(path, ec), spec);
    out.paths.push_back(path.string());
    listed.insert(sh.first);
  }
  int64_t extra = 0;
  for (const auto& t : tars) extra += listed.count(t) ? 0 : 1;
  if (extra > 0) {
    log_warn(spec, ": ignoring ", extra, " .tar file", extra == 1 ? "" : "s", " that ",
             manifests[0], " does not list");
  }
  out.manifest = manifests[0];
  out.manifest_samples = w.samples;
  return out;
}

ShardPaths shard_paths(const std::string& spec) {
  std::vector<std::string> paths;
  if (spec.find('{') != std::string::npos) {
    paths = expand_braces(spec);
    size_t missing = 0;
    std::string first_missing;
    for (const auto& p : paths) {
      std::error_code ec;
      const auto st = fs::status(p, ec);
      if (!fs::exists(st)) {
        if (missing++ == 0) first_missing = p;
      } else {
        require_regular_shard(p, st, spec);
      }
    }
    TORCH_CHECK(missing == 0, "shard pattern ", spec, ": ", missing, " of ", paths.size(),
                " shards not found, the first ", first_missing);
    return just(std::move(paths));
  }
  TORCH_CHECK(fs::exists(spec), "dataset not found: ", spec);
  if (fs::is_directory(spec)) return folder_shards(spec);
  if (is_tar_name(spec)) {
    require_regular_shard(spec, fs::status(spec), spec);
    return just({spec});
  }
  // A list file: one shard path a line, relative ones from the list's folder.
  std::ifstream in(spec);
  std::string line;
  int64_t number = 0;
  const auto base = fs::path(spec).parent_path();
  while (std::getline(in, line)) {
    ++number;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    fs::path p(line);
    if (p.is_relative()) p = base / p;
    std::error_code ec;
    const auto st = fs::status(p, ec);
    TORCH_CHECK(fs::exists(st), spec, ":", number, ": shard not found: ", p.string());
    require_regular_shard(p.string(), st, spec);
    paths.push_back(p.string());
  }
  TORCH_CHECK(!paths.empty(), "no shard paths in the list ", spec);
  return just(std::move(paths));
}

}  // namespace

std::vector<std::string> expand_braces(const std::string& pattern) {
  return expand_pattern(pattern);
}

bool is_shard_spec(const std::string& spec) {
  if (spec.find('{') != std::string::npos) return to_lower(spec).find(".tar") != std::string::npos;
  std::error_code ec;
  if (fs::is_directory(spec, ec)) {
    int64_t tars = 0;
    for (const auto& e : fs::directory_iterator(spec, ec)) {
      const auto name = to_lower(e.path().filename().string());
      if (!e.is_regular_file()) continue;
      if (is_tar_name(name)) ++tars;
      if (ends_with(name, ".jpg") || ends_with(name, ".jpeg") || ends_with(name, ".png")) {
        return false;
      }
    }
    return tars > 0;
  }
  if (!fs::is_regular_file(spec, ec)) return false;
  if (is_tar_name(spec)) return true;
  return is_tar_name(first_line(spec));
}

// ---- Reading ------------------------------------------------------------------------

struct ShardReader::Member {
  std::string key, ext;
  std::vector<uint8_t> data;
  std::string too_large;  // why data was not read
};

int64_t max_member_bytes(int64_t max_image_pixels) {
  return max_image_pixels * 4 + (int64_t{16} << 20);
}

ShardReader::ShardReader(const std::string& path, int64_t max_member)
    : path_(path), max_member_(max_member) {
  ar_ = archive_read_new();
  archive_read_support_format_tar(ar_);
  archive_read_support_filter_all(ar_);
  if (archive_read_open_filename(ar_, path.c_str(), 1 << 16) != ARCHIVE_OK) {
    damage_ = archive_error_string(ar_) ? archive_error_string(ar_) : "cannot open";
    done_ = true;
    return;
  }
  std::error_code ec;
  const auto bytes = fs::file_size(path, ec);
  if (!ec && archive_filter_count(ar_) == 1 && archive_filter_code(ar_, 0) == ARCHIVE_FILTER_NONE) {
    file_bytes_ = static_cast<int64_t>(bytes);
  }
}

ShardReader::~ShardReader() {
  if (ar_ != nullptr) archive_read_free(ar_);
}

bool ShardReader::read_member(Member& m, bool read_data) {
  while (true) {
    struct archive_entry* entry = nullptr;
    damaged_key_.clear();
    const int r = archive_read_next_header(ar_, &entry);
    if (r == ARCHIVE_EOF) return false;
    if (r < ARCHIVE_WARN) {
      const char* why = archive_error_string(ar_);
      damage_ = why ? why : "damaged tar header";
      return false;
    }
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    const std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    // WebDataset's rule: the key is the path up to the first dot of the
    // file name; the rest is the member's extension.
    const auto slash = name.rfind('/');
    const auto dot = name.find('.', slash == std::string::npos ? 0 : slash + 1);
    if (dot == std::string::npos || dot == 0 || (slash != std::string::npos && dot == slash + 1)) {
      ++ignored_;
      if (archive_read_data_skip(ar_) < ARCHIVE_WARN) {
        damage_ = archive_error_string(ar_) ? archive_error_string(ar_) : "damaged member";
        return false;
      }
      continue;
    }
    m.key = name.substr(0, dot);
    m.ext = to_lower(name.substr(dot + 1));
    m.data.clear();
    m.too_large.clear();
    damaged_key_ = m.key;  // until its data is through
    const bool wanted =
        read_data && (is_image_ext(m.ext) || m.ext == "cls" || m.ext == "json");
    const auto size = archive_entry_size(entry);
    if (file_bytes_ >= 0 && size > file_bytes_) {
      // A header's claim no uncompressed shard could hold: damage, found
      // before any read or skip is tried on it.
      damage_ = fmt::format("the tar header of {} declares {} bytes, more than the whole shard's "
                            "{}", name, size, file_bytes_);
      return false;
    }
    if (wanted && size > max_member_) {
      m.too_large = fmt::format("its tar header declares {} bytes, more than the {} a member "
                                "may have (--max-image-pixels x 4 + 16 MiB)", size, max_member_);
    }
    if (wanted && m.too_large.empty()) {
      if (!read_member_data(m, size, name)) return false;
    } else if (archive_read_data_skip(ar_) < ARCHIVE_WARN) {
      damage_ = fmt::format("{} (in {})", archive_error_string(ar_) ? archive_error_string(ar_)
                                                                  : "damaged member",
                            name);
      return false;
    }
    damaged_key_.clear();
    return true;
  }
}

// The member's data, grown as it arrives: memory follows what the archive
// holds, not what its header claims.
bool ShardReader::read_member_data(Member& m, int64_t size, const std::string& name) {
  constexpr size_t kChunk = size_t{1} << 20;
  const auto want = static_cast<size_t>(std::max<int64_t>(size, 0));
  size_t got = 0;
  while (got < want) {
    m.data.resize(got + std::min(kChunk, want - got));
    const auto n = archive_read_data(ar_, m.data.data() + got, m.data.size() - got);
    if (n < 0) {
      damage_ = fmt::format("{} (in {})", archive_error_string(ar_) ? archive_error_string(ar_)
                                                                  : "read error",
                            name);
      return false;
    }
    if (n == 0) {
      damage_ = fmt::format("truncated tar archive (in {})", name);
      return false;
    }
    got += static_cast<size_t>(n);
  }
  m.data.resize(got);
  return true;
}

bool ShardReader::next(ShardSample& s, bool read_data) {
  while (!done_) {
    std::unique_ptr<Member> m = std::move(pending_);
    if (!m) {
      m = std::make_unique<Member>();
      if (!read_member(*m, read_data)) {
        done_ = true;
        return false;
      }
    }
    s.shard = path_;
    s.key = m->key;
    s.image_ext.clear();
    s.image.clear();
    s.image_error.clear();
    s.label = -1;
    s.label_error.clear();
    bool has_image = false, has_label = false;
    while (true) {
      if (is_image_ext(m->ext) && !has_image) {
        has_image = true;
        s.image_ext = m->ext;
        s.image = std::move(m->data);
        s.image_error = std::move(m->too_large);
      } else if ((m->ext == "cls" || m->ext == "json") && !has_label) {
        has_label = true;
        if (read_data) {
          const std::string text(m->data.begin(), m->data.end());
          try {
            if (m->ext == "cls") {
              // Digits alone, as WebDataset writes str(int): "+5", "5.0"
              // and "0x5" are not class indices.
              size_t a = 0, b = text.size();
              while (a < b && std::isspace(static_cast<unsigned char>(text[a]))) ++a;
              while (b > a && std::isspace(static_cast<unsigned char>(text[b - 1]))) --b;
              const std::string digits = text.substr(a, b - a);
              TORCH_CHECK(all_digits(digits) && digits.size() <= 18, "not a class index");
              s.label = std::stoll(digits);
            } else {
              const auto j = nlohmann::json::parse(text);
              const auto& v = j.contains("label") ? j.at("label") : j.at("cls");
              // 2.5 is not read as 2, nor true as 1.
              TORCH_CHECK(v.is_number_integer(), "not an integer");
              s.label = v.get<int64_t>();
            }
            TORCH_CHECK(s.label >= 0, "negative");
          } catch (const std::exception&) {
            s.label = -1;
            s.label_error = fmt::format("{}:{}.{}: expected a class index >= 0, got '{}'",
                                        path_, m->key, m->ext, printable(text, 40));
          }
        } else {
          s.label = 0;  // present; its value is not read when counting
        }
      } else {
        ++ignored_;
      }
      auto nm = std::make_unique<Member>();
      if (!read_member(*nm, read_data)) {
        done_ = true;
        // Damage drops the sample it cut; a clean end, or damage inside the
        // next sample's first member, completes this one. Damage to a
        // header could have cut this sample: it is dropped.
        if (!damage_.empty() && (damaged_key_.empty() || damaged_key_ == s.key)) return false;
        break;
      }
      if (nm->key != s.key) {
        pending_ = std::move(nm);
        break;
      }
      m = std::move(nm);
    }
    if (has_image) return true;
    // A sample without an image (a label alone) is passed over.
  }
  return false;
}

ShardList open_shards(const std::string& spec, bool strict) {
  const auto t0 = std::chrono::steady_clock::now();
  ShardList list;
  list.spec = spec;
  const auto found = shard_paths(spec);
  for (const auto& path : found.paths) {
    Shard shard;
    shard.path = path;
    std::error_code ec;
    shard.bytes = static_cast<int64_t>(fs::file_size(path, ec));
    ShardReader reader(path);
    ShardSample s;
    while (reader.next(s, /*read_data=*/false)) {
      ++shard.samples;
      if (s.label >= 0) ++list.labelled;
    }
    list.ignored_members += reader.ignored_members();
    if (!reader.damage().empty()) {
      TORCH_CHECK(!strict, "--strict-data: shard ", path, " is damaged after ", shard.samples,
                  " samples: ", reader.damage());
      list.damaged.push_back(fmt::format("{} (after {} samples: {})", path, shard.samples,
                                         reader.damage()));
    }
    list.samples += shard.samples;
    list.shards.push_back(std::move(shard));
  }
  if (found.manifest_samples >= 0 && found.manifest_samples != list.samples) {
    TORCH_CHECK(!strict, "--strict-data: ", spec, " holds ", list.samples, " samples, and its ",
                found.manifest, " says ", found.manifest_samples, " were written");
    log_warn(spec, " holds ", list.samples, " samples, and its ", found.manifest, " says ",
             found.manifest_samples, " were written: its shards changed since");
  }
  list.scan_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return list;
}

// ---- Manifests ----------------------------------------------------------------------

ShardManifest read_shard_manifest(const std::string& path) {
  std::ifstream in(path);
  TORCH_CHECK(in.good(), "cannot read ", path);
  in.seekg(0, std::ios::end);
  TORCH_CHECK(in.tellg() < (std::streamoff{64} << 20), path, " is too large for a manifest");
  in.seekg(0);
  ShardManifest m;
  try {
    const auto j = nlohmann::json::parse(in);
    TORCH_CHECK(j.at("format").get<std::string>() == "moco-shards", "not a moco-shards manifest");
    m.prefix = j.at("prefix").get<std::string>();
    m.split = j.value("split", "");
    m.source = j.value("source", "");
    m.samples = j.at("samples").get<int64_t>();
    m.labelled = j.value("labelled", int64_t{0});
    for (const auto& sh : j.at("shards")) {
      const auto name = sh.at("name").get<std::string>();
      // Names in this folder only: a manifest must not point elsewhere.
      TORCH_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "." &&
                      name != ".." && is_tar_name(name),
                  "shard name '", printable(name), "' is not a .tar in the folder");
      m.shards.emplace_back(name, sh.at("samples").get<int64_t>());
    }
    TORCH_CHECK(!m.shards.empty() && m.samples >= 0, "no shards");
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, path, ": ", e.what_without_backtrace());
  } catch (const std::exception& e) {
    TORCH_CHECK(false, path, " is not a manifest moco can read (", e.what(), ")");
  }
  return m;
}

// ---- Writing ------------------------------------------------------------------------

ShardLimit parse_shard_size(const std::string& text) {
  ShardLimit l;
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  TORCH_CHECK(used > 0 && v > 0, "--shard-size: expected samples (10000) or bytes with a unit "
              "(256MB, 1GB), got '", text, "'");
  if (unit.empty()) {
    TORCH_CHECK(v == std::floor(v), "--shard-size: expected a whole number of samples, got '",
                text, "'");
    l.samples = static_cast<int64_t>(v);
    return l;
  }
  const auto u = to_lower(unit);
  double scale = 0;
  if (u == "b") scale = 1;
  if (u == "kb" || u == "k") scale = 1e3;
  if (u == "mb" || u == "m") scale = 1e6;
  if (u == "gb" || u == "g") scale = 1e9;
  if (u == "kib") scale = 1024.0;
  if (u == "mib") scale = 1024.0 * 1024;
  if (u == "gib") scale = 1024.0 * 1024 * 1024;
  TORCH_CHECK(scale > 0, "--shard-size: unknown unit '", unit, "' in '", text,
              "' (B, kB, MB, GB, KiB, MiB, GiB)");
  l.samples = 0;
  l.bytes = static_cast<int64_t>(v * scale);
  TORCH_CHECK(l.bytes >= 1024, "--shard-size: expected at least 1 kB, got '", text, "'");
  return l;
}

ShardingResult write_dataset_shards(const ImageSet& set, const std::string& dir,
                                    const std::string& prefix, ShardLimit limit) {
  require_indexed(set, "shard");
  fs::create_directories(dir);
  const std::string manifest = (fs::path(dir) / (prefix + kManifestSuffix)).string();
  const bool finished = fs::exists(fs::symlink_status(manifest));
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.rfind(prefix + "-", 0) != 0) continue;
    TORCH_CHECK(!is_tar_name(name) || !finished, dir, " already holds shards (", name,
                "); choose another folder or remove them");
    TORCH_CHECK(!is_tar_name(name) && !ends_with(to_lower(name), ".tar.tmp"), dir,
                " holds the shards of an unfinished write (", name, ", and no ",
                prefix + kManifestSuffix, "); remove ", prefix,
                "-*.tar* and write them again, or choose another folder");
  }
  ShardingResult r;
  ShardWriter writer(dir, prefix, limit);
  const int64_t n = set.size();
  const int digits = std::max<int>(6, static_cast<int>(std::to_string(n).size()));
  int64_t next_report = n / 10;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<uint8_t> bytes;
    std::string ext = "png";
    if (set.on_disk()) {
      const auto& path = set.files[static_cast<size_t>(i)];
      try {
        bytes = read_file(path);
        read_image_info(bytes, path);
      } catch (const c10::Error& e) {
        log_warn("skipping unreadable image: ", e.what_without_backtrace());
        ++r.skipped;
        continue;
      }
      ext = to_lower(fs::path(path).extension().string().substr(1));
    } else {
      const auto hwc = set.images[i].permute({1, 2, 0}).contiguous();
      bytes = encode_png(hwc.data_ptr<uint8_t>(), hwc.size(0), hwc.size(1), hwc.size(2));
    }
    const int64_t label = set.labelled() ? set.labels[i].item<int64_t>() : -1;
    writer.add(fmt::format("{:0{}d}", i, digits), ext, bytes, label);
    ++r.samples;
    r.labelled += label >= 0 ? 1 : 0;
    r.bytes += static_cast<int64_t>(bytes.size());
    if (i + 1 == next_report && n >= 1000) {
      log_info("shard: ", i + 1, " of ", n, " images written");
      next_report += n / 10;
    }
  }
  r.shards = writer.finish();
  r.pattern = writer.pattern();
  TORCH_CHECK(r.samples > 0, "no readable image in ", set.description, "; nothing written");
  // Written last: its presence says the write finished.
  nlohmann::ordered_json j;
  j["format"] = "moco-shards";
  j["version"] = 1;
  j["prefix"] = prefix;
  j["split"] = prefix;
  j["source"] = set.description;
  j["samples"] = r.samples;
  j["labelled"] = r.labelled;
  j["shards"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < r.shards.size(); ++i) {
    j["shards"].push_back({{"name", fs::path(r.shards[i]).filename().string()},
                           {"samples", writer.samples_in()[i]}});
  }
  io::atomic_write(manifest, j.dump(1) + "\n");
  return r;
}

ShardWriter::ShardWriter(std::string dir, std::string prefix, ShardLimit limit)
    : dir_(std::move(dir)), prefix_(std::move(prefix)), limit_(limit) {}

ShardWriter::~ShardWriter() {
  if (ar_ != nullptr) {
    archive_write_free(ar_);
    ::close(fd_);
    std::error_code ec;
    fs::remove(tmp_, ec);  // an unfinished shard is not left behind
  }
}

void ShardWriter::open_next() {
  final_ = (fs::path(dir_) / fmt::format("{}-{:06d}.tar", prefix_, written_.size())).string();
  tmp_ = final_ + ".tmp";
  fd_ = open_new_file(tmp_);  // not through a link planted at the name
  ar_ = archive_write_new();
  archive_write_set_format_ustar(ar_);
  TORCH_CHECK(archive_write_open_fd(ar_, fd_) == ARCHIVE_OK, "cannot write ", tmp_, ": ",
              archive_error_string(ar_));
  in_shard_ = 0;
  bytes_in_shard_ = 0;
}

void ShardWriter::close_current() {
  if (ar_ == nullptr) return;
  const int r = archive_write_close(ar_);
  std::string why = archive_error_string(ar_) ? archive_error_string(ar_) : "";
  archive_write_free(ar_);
  ar_ = nullptr;
  const bool synced = ::fsync(fd_) == 0;
  if (!synced && why.empty()) why = std::strerror(errno);
  const bool closed = ::close(fd_) == 0;
  if (!closed && why.empty()) why = std::strerror(errno);
  fd_ = -1;
  TORCH_CHECK(r == ARCHIVE_OK && synced && closed, "cannot finish ", tmp_, ": ", why);
  fs::rename(tmp_, final_);
  written_.push_back(final_);
  samples_in_.push_back(in_shard_);
}

void ShardWriter::add(const std::string& key, const std::string& ext,
                      const std::vector<uint8_t>& image, int64_t label) {
  const std::string cls = label >= 0 ? std::to_string(label) : "";
  auto tar_bytes = [](size_t n) { return static_cast<int64_t>(512 + (n + 511) / 512 * 512); };
  const int64_t sample_bytes = tar_bytes(image.size()) + (label >= 0 ? tar_bytes(cls.size()) : 0);
  if (ar_ != nullptr && in_shard_ > 0 &&
      ((limit_.samples > 0 && in_shard_ >= limit_.samples) ||
       (limit_.bytes > 0 && bytes_in_shard_ + sample_bytes + 1024 > limit_.bytes))) {
    close_current();
  }
  if (ar_ == nullptr) open_next();
  auto member = [&](const std::string& name, const void* data, size_t size) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(size));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 0, 0);  // the same input gives the same bytes
    const int r = archive_write_header(ar_, e);
    archive_entry_free(e);
    TORCH_CHECK(r == ARCHIVE_OK, "cannot write ", name, " into ", tmp_, ": ",
                archive_error_string(ar_));
    if (size > 0) {
      TORCH_CHECK(archive_write_data(ar_, data, size) == static_cast<la_ssize_t>(size),
                  "cannot write ", name, " into ", tmp_, ": ", archive_error_string(ar_));
    }
  };
  member(key + "." + ext, image.data(), image.size());
  if (label >= 0) member(key + ".cls", cls.data(), cls.size());
  ++in_shard_;
  bytes_in_shard_ += sample_bytes;
}

std::vector<std::string> ShardWriter::finish() {
  close_current();
  return written_;
}

std::string ShardWriter::pattern() const {
  if (written_.empty()) return "";
  if (written_.size() == 1) return written_.front();
  return (fs::path(dir_) / fmt::format("{}-{{{:06d}..{:06d}}}.tar", prefix_, 0,
                                       written_.size() - 1))
      .string();
}

}  // namespace moco::data
