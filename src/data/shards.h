// Tar shards in the WebDataset layout: the members of a sample share a
// basename (`000123.jpg` + `000123.cls`) and follow one another in the
// archive; shards are read sequentially, never indexed sample by sample.
// Read and written with libarchive.
//
//   auto shards = data::open_shards("shards/train-{000000..000146}.tar");
//   shards.samples;                        // counted from the tar headers
//   data::ShardReader r(shards.shards[0].path);
//   data::ShardSample s;
//   while (r.next(s)) decode(s.image, s.name());
//   data::ShardWriter w("out", "train", data::ShardLimit{10000, 0});
//   w.add("000000", "jpg", bytes, /*label=*/3);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/image_decode.h"

struct archive;  // libarchive's handle (archive.h stays out of this header)

namespace moco::data {

// WebDataset's brace notation: "a-{000..012}.tar" gives a-000.tar to
// a-012.tar (zero-padded to the width written), "{a,b}" alternatives;
// several groups multiply. Errors name the pattern.
std::vector<std::string> expand_braces(const std::string& pattern);

// Whether DATA names shards: a brace pattern or path ending in .tar, a
// folder holding .tar files and no images, or a text file listing .tar
// paths.
bool is_shard_spec(const std::string& spec);

struct Shard {
  std::string path;
  int64_t samples = 0;   // samples with an image member
  int64_t bytes = 0;     // file size
};

struct ShardList {
  std::string spec;
  std::vector<Shard> shards;
  int64_t samples = 0;
  int64_t labelled = 0;  // samples with a .cls or .json member
  int64_t ignored_members = 0;  // members neither image nor label
  std::vector<std::string> damaged;  // shards cut short, with why
  double scan_seconds = 0;
};

// Expands DATA to shard paths and counts each shard's samples from its tar
// headers (no image data read: libarchive skips over it). A truncated or
// damaged shard counts the samples before the damage and is reported
// (strict: an error naming it).
ShardList open_shards(const std::string& spec, bool strict = false);

struct ShardSample {
  std::string shard, key;        // key: the members' shared basename
  std::string image_ext;         // jpg | jpeg | png, lower case
  std::vector<uint8_t> image;    // the image member's bytes (empty: skipped)
  std::string image_error;       // why the image member was not read (too large)
  int64_t label = -1;            // from .cls / .json; -1: none
  std::string label_error;       // a label member that could not be read
  std::string name() const { return shard + ":" + key + "." + image_ext; }
};

// The largest member a reader takes in: 4 bytes a pixel of the largest
// image --max-image-pixels allows, plus 16 MiB of headers and metadata. A
// larger one is skipped, never allocated: a tar header's size is a claim.
int64_t max_member_bytes(int64_t max_image_pixels = kMaxImagePixels);

// One shard, sample by sample, in archive order.
class ShardReader {
 public:
  explicit ShardReader(const std::string& path, int64_t max_member = max_member_bytes());
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  // The next sample with an image; false at the end of the shard. With
  // read_data false the bytes are skipped (counting, fast-forwarding). A
  // damaged archive ends the shard early: damage() then says why, and the
  // sample being read when it was hit is dropped.
  bool next(ShardSample& sample, bool read_data = true);
  const std::string& damage() const { return damage_; }
  int64_t ignored_members() const { return ignored_; }

 private:
  struct Member;
  bool read_member(Member& m, bool read_data);
  bool read_member_data(Member& m, int64_t size, const std::string& name);

  std::string path_;
  int64_t max_member_;
  int64_t file_bytes_ = -1;  // an uncompressed shard's size: no member is larger
  ::archive* ar_ = nullptr;
  std::unique_ptr<Member> pending_;  // first member of the next sample
  std::string damage_;
  std::string damaged_key_;  // key of the member the damage cut, if its header was read
  int64_t ignored_ = 0;
  bool done_ = false;
};

// Shard size: samples, or bytes (whichever is set; a shard holds at least
// one sample).
struct ShardLimit {
  int64_t samples = 10000;
  int64_t bytes = 0;
};
// "10000" -> samples; "256MB", "1GB", "500kB" -> bytes (powers of 1000;
// KiB/MiB/GiB powers of 1024). Errors name --shard-size.
ShardLimit parse_shard_size(const std::string& text);

// Writes PREFIX-000000.tar, PREFIX-000001.tar, ... in `dir` (ustar, as
// Python's tarfile and WebDataset write), each through a temporary file
// renamed when complete.
class ShardWriter {
 public:
  ShardWriter(std::string dir, std::string prefix, ShardLimit limit);
  ~ShardWriter();
  // One sample: KEY.EXT with the image bytes, KEY.cls with the label (>= 0).
  void add(const std::string& key, const std::string& ext,
           const std::vector<uint8_t>& image, int64_t label);
  // Closes the last shard; returns the shard paths written.
  std::vector<std::string> finish();
  // The brace pattern of what was written ("dir/train-{000000..000012}.tar").
  std::string pattern() const;
  // Samples in each shard closed so far.
  const std::vector<int64_t>& samples_in() const { return samples_in_; }

 private:
  void open_next();
  void close_current();

  std::string dir_, prefix_;
  ShardLimit limit_;
  ::archive* ar_ = nullptr;
  int fd_ = -1;
  std::string tmp_, final_;
  int64_t in_shard_ = 0, bytes_in_shard_ = 0;
  std::vector<std::string> written_;
  std::vector<int64_t> samples_in_;
};

struct ImageSet;

// What `moco shard` writes last, as PREFIX.manifest.json beside the shards:
// a folder with one is known complete, and a folder is one write's shards.
constexpr const char* kManifestSuffix = ".manifest.json";
struct ShardManifest {
  std::string prefix, split, source;
  std::vector<std::pair<std::string, int64_t>> shards;  // file name, samples
  int64_t samples = 0, labelled = 0;
};
// Errors name the file; shard names must be plain .tar names.
ShardManifest read_shard_manifest(const std::string& path);

struct ShardingResult {
  std::vector<std::string> shards;
  std::string pattern;   // to pass as DATA
  int64_t samples = 0, labelled = 0, skipped = 0, bytes = 0;
};

// `moco shard`: every image of `set` into DIR/PREFIX-NNNNNN.tar; image
// files as their own bytes (not re-encoded; ones whose header cannot be
// read are skipped with a warning), in-memory images as PNG; labels as
// KEY.cls; then DIR/PREFIX.manifest.json. Refuses a folder that already
// holds PREFIX-*.tar (finished, or left by a write that was stopped).
ShardingResult write_dataset_shards(const ImageSet& set, const std::string& dir,
                                    const std::string& prefix, ShardLimit limit);

}  // namespace moco::data
