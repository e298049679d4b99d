#pragma once
// Files the program reads whole and writes, and the lock of a folder several processes write.
//
// Every file inputrep writes goes through `write_file`: the bytes go to a sibling temporary file,
// are flushed to the disk (fsync), and only then renamed over the name, which must be a regular
// file or nothing. A name that is a device, a FIFO, a socket or a folder is refused before
// anything is written (`check_output`, which commands call before any work): renaming over
// /dev/null would replace the device itself.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <concepts>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <string_view>

#include <inputrep/core/error.hpp>

namespace inputrep {

// What a path is when it is not a regular file ("a character device", ...); empty for a regular
// file or nothing.
inline std::string_view not_a_file(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};  // nothing there (or a dangling link): the name is free
    if (S_ISREG(st.st_mode)) return {};
    if (S_ISDIR(st.st_mode)) return "a folder";
    if (S_ISCHR(st.st_mode)) return "a character device";
    if (S_ISBLK(st.st_mode)) return "a block device";
    if (S_ISFIFO(st.st_mode)) return "a FIFO";
    if (S_ISSOCK(st.st_mode)) return "a socket";
    return "not a regular file";
}

namespace detail {

inline void fsync_path(const std::filesystem::path& path, int flags) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) return;  // a folder we may not open: the rename itself is still atomic
    ::fsync(fd);
    ::close(fd);
}

// Why `path` cannot be written as a file ("it is a FIFO, not a file; ...", "the folder x does not
// exist"); empty when it can.
inline std::string output_problem(const std::filesystem::path& path) {
    if (const auto kind = not_a_file(path); !kind.empty())
        return "it is " + std::string(kind) + ", not a file; refusing to replace it";
    const auto folder = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec)) return "the folder " + folder.string() + " does not exist";
    return {};
}

}  // namespace detail

// Refuses `path` as an output before any work: something that exists and is not a regular file,
// or a file in a folder that does not exist. `what` names the option ("--save").
inline void check_output(const std::filesystem::path& path, std::string_view what) {
    if (const auto problem = detail::output_problem(path); !problem.empty())
        fail(what, ": cannot write ", path.string(), ": ", problem);
}

// Refuses `path` as an output folder: something there that is not a folder.
inline void check_output_folder(const std::filesystem::path& path, std::string_view what) {
    if (const auto kind = not_a_file(path); kind != "a folder" && std::filesystem::exists(path))
        fail(what, ": ", path.string(), " is ", kind.empty() ? "a file" : kind, ", not a folder");
}

// `fill(stream)` into a temporary sibling of `path`, flushed to the disk, then renamed over `path`:
// `path` holds the old bytes or all of the new ones, never a part, and nothing that is not a
// regular file is ever replaced.
template <class Fill>
requires std::invocable<Fill&, std::ostream&>
void write_file(const std::filesystem::path& path, Fill&& fill) {
    if (const auto problem = detail::output_problem(path); !problem.empty())
        fail(path.string(), ": cannot write (", problem, ")");
    auto tmp = path;
    tmp += ".tmp-" + std::to_string(::getpid());
    auto discard = [&] {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
    };
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path.string(), ": cannot write (", std::strerror(errno), ")");
    try {
        fill(out);
    } catch (...) {
        out.close();
        discard();
        throw;
    }
    out.close();
    if (out.fail()) {
        const int error = errno;
        discard();
        fail(path.string(), ": writing failed (", std::strerror(error), "); nothing was left under that name");
    }
    detail::fsync_path(tmp, O_RDONLY);
    // Checked again: the name may have become a device or a folder while the bytes were written.
    if (const auto kind = not_a_file(path); !kind.empty()) {
        discard();
        fail(path.string(), ": cannot write (it is ", kind, ", not a file; refusing to replace it)");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        discard();
        fail(path.string(), ": cannot move the finished file into place (", ec.message(), ")");
    }
    detail::fsync_path(path.has_parent_path() ? path.parent_path() : std::filesystem::path("."),
                       O_RDONLY | O_DIRECTORY);
}

inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
    write_file(path, [&](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

// The bytes of a regular file; `what` says what the file is for ("corpus file", "results file").
inline std::string read_file(const std::filesystem::path& path, std::string_view what = "file") {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) fail(path.string(), ": no such ", what);
    if (const auto kind = not_a_file(path); !kind.empty()) fail(path.string(), ": not a ", what, " (it is ", kind, ")");
    std::ifstream in(path, std::ios::binary);
    require(in.good(), path.string(), ": cannot read the ", what, " (", std::strerror(errno), ")");
    std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    require(!in.bad(), path.string(), ": reading the ", what, " failed");
    return bytes;
}

// An advisory lock on a folder (flock on FOLDER/.lock), held for the object's life. Writers that
// may share the folder (a sweep's shards, each with its own results file) take it shared; writers
// that replace what others write (a merge) take it exclusive. It never waits: a folder in use is
// an error that says so.
class FolderLock {
public:
    enum Mode { shared, exclusive };

    FolderLock(const std::filesystem::path& folder, Mode mode, std::string_view user) {
        const auto file = folder / ".lock";
        fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        require(fd_ >= 0, "cannot open the lock ", file.string(), ": ", std::strerror(errno));
        if (::flock(fd_, (mode == shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
            ::close(fd_);
            fail(folder.string(), " is in use by another inputrep (",
                 mode == shared ? "a merge" : "a sweep, merge or summary", " holds ", file.string(), "), so ", user,
                 " cannot write there now; wait for it to finish");
        }
    }
    FolderLock(const FolderLock&) = delete;
    FolderLock& operator=(const FolderLock&) = delete;
    ~FolderLock() { ::close(fd_); }

private:
    int fd_ = -1;
};

}  // namespace inputrep
