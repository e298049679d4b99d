#pragma once
// A file mapped copy-on-write: tensors can alias it without copying, an in-place operation on
// such a tensor touches a private page, and the file on disk is never modified.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>

#include <inputrep/core/error.hpp>

namespace inputrep {

class MappedFile {
public:
    static std::shared_ptr<MappedFile> open(const std::filesystem::path& path) {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) fail(path.string(), ": cannot open (", std::strerror(errno), ")");
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            ::close(fd);
            fail(path.string(), ": cannot stat (", std::strerror(errno), ")");
        }
        auto file = std::shared_ptr<MappedFile>(new MappedFile());
        file->size_ = static_cast<std::size_t>(st.st_size);
        if (file->size_ > 0) {
            void* p = ::mmap(nullptr, file->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                ::close(fd);
                fail(path.string(), ": cannot map (", std::strerror(errno), ")");
            }
            file->data_ = static_cast<std::byte*>(p);
        }
        ::close(fd);
        return file;
    }
    ~MappedFile() {
        if (data_) ::munmap(data_, size_);
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    std::span<std::byte> bytes() const { return {data_, size_}; }

    // Drops the whole pages inside `part` from this process's resident memory once they have been
    // copied: the file is read again if they are touched later (they were never written).
    void release(std::span<const std::byte> part) const {
        const auto page = std::uintptr_t(::sysconf(_SC_PAGESIZE));
        const auto begin = (std::uintptr_t(part.data()) + page - 1) / page * page,
                   end = (std::uintptr_t(part.data()) + part.size()) / page * page;
        if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
    }
    std::size_t size() const { return size_; }

private:
    MappedFile() = default;
    std::byte* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace inputrep
