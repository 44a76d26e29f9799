// What every kernel of the project's oneDNN custom ops shares (dnnl_conv.cc, conv_gemm.cc, dnnl_eltwise.cc): one
// engine, one stream on a threadpool, and one lock, since MindSpore may launch kernels from several threads while
// the cached primitives and scratch buffers are shared.
//
// MindSpore's libdnnl.so.3 is built with the THREADPOOL runtime: a stream without a threadpool runs single-threaded,
// so the stream gets the small fork-join pool below.
#pragma once
#include "dnnl_api.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace dcgan_dnnl {

// ---------------------------------------------------------------------------------------------------------------
// A small fork-join threadpool: the caller runs share 0, one worker thread per further core runs the others.
class ThreadPool : public dnnl::threadpool_interop::threadpool_iface {
  public:
    explicit ThreadPool(int n) : n_(n < 1 ? 1 : n) {
        for (int i = 1; i < n_; ++i) workers_.emplace_back([this] { work(); });
    }
    ~ThreadPool() override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
            ++generation_;
        }
        cv_.notify_all();
        for (auto &t : workers_) t.join();
    }
    int get_num_threads() const override { return n_; }
    bool get_in_parallel() const override { return in_parallel_; }
    uint64_t get_flags() const override { return 0; }  // synchronous: parallel_for returns when all is done
    void wait() override {}
    void parallel_for(int n, const std::function<void(int, int)> &fn) override {
        if (n <= 0) return;
        if (n == 1 || n_ == 1 || in_parallel_) {
            for (int i = 0; i < n; ++i) fn(i, n);
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            fn_ = &fn;
            total_ = n;
            next_.store(0);
            done_.store(0);
            ++generation_;
        }
        cv_.notify_all();
        run(&fn, n);
        // Spin briefly, then block, until every index has run and no worker still holds `fn`.
        for (int spins = 0; done_.load(std::memory_order_acquire) < n && spins < 2000; ++spins) sched_yield();
        std::unique_lock<std::mutex> lock(mu_);
        fn_ = nullptr;
        done_cv_.wait(lock, [&] { return done_.load() >= n && active_ == 0; });
    }

  private:
    void run(const std::function<void(int, int)> *fn, int total) {
        in_parallel_ = true;
        for (int i; (i = next_.fetch_add(1)) < total;) {
            (*fn)(i, total);
            if (done_.fetch_add(1) + 1 == total) {
                std::lock_guard<std::mutex> lock(mu_);
                done_cv_.notify_all();
            }
        }
        in_parallel_ = false;
    }
    void work() {
        uint64_t seen = 0;
        for (;;) {
            const std::function<void(int, int)> *fn;
            int total;
            {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait(lock, [&] { return generation_ != seen; });
                seen = generation_;
                if (stop_) return;
                if (fn_ == nullptr) continue;
                fn = fn_;
                total = total_;
                ++active_;
            }
            run(fn, total);
            std::lock_guard<std::mutex> lock(mu_);
            if (--active_ == 0) done_cv_.notify_all();
        }
    }
    int n_;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    uint64_t generation_ = 0;
    bool stop_ = false;
    const std::function<void(int, int)> *fn_ = nullptr;
    int total_ = 0;
    int active_ = 0;
    std::atomic<int> next_{0}, done_{0};
    static inline thread_local bool in_parallel_ = false;
};

// Threads for the kernels: DCGAN_CPU_THREADS if set (launchers that start several workers on one host set it to
// their share of the cores), else every core this process may run on.
inline int kernel_threads() {
    int cores = static_cast<int>(std::thread::hardware_concurrency());
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = CPU_COUNT(&set);
    if (cores < 1) cores = 1;
    const char *env = std::getenv("DCGAN_CPU_THREADS");
    int wanted = env ? std::atoi(env) : 0;
    return wanted >= 1 && wanted < cores ? wanted : cores;
}

// ---------------------------------------------------------------------------------------------------------------
struct Context {
    dnnl_engine_t engine = nullptr;
    dnnl_stream_t stream = nullptr;
    std::unique_ptr<ThreadPool> pool;
    bool ok = false;
    Context() {
        pool.reset(new ThreadPool(kernel_threads()));
        ok = dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success &&
             dnnl_threadpool_interop_stream_create(&stream, engine, pool.get()) == dnnl_success;
        if (!ok) std::fprintf(stderr, "dnnl kernels: cannot create a oneDNN engine/stream\n");
    }
};

inline Context &context() {
    static Context *ctx = new Context();  // never destroyed: MindSpore may call us during interpreter shutdown
    return *ctx;
}

inline std::mutex &exec_mutex() {
    static std::mutex mu;
    return mu;
}

// Scratch memory for one kernel call (blocked copies of the arguments, im2col matrices). Calls are serialised
// (ExecScope), so three buffers, each grown to the largest size asked for, serve every kernel.
inline void *arena(int slot, size_t bytes) {
    static void *buf[3] = {nullptr, nullptr, nullptr};
    static size_t size[3] = {0, 0, 0};
    if (bytes > size[slot]) {
        std::free(buf[slot]);
        size[slot] = (bytes + 4095) / 4096 * 4096;
        buf[slot] = std::aligned_alloc(4096, size[slot]);
        if (!buf[slot]) size[slot] = 0;
    }
    return buf[slot];
}

inline bool check(dnnl_status_t s, const char *what) {
    if (s != dnnl_success) std::fprintf(stderr, "dnnl kernels: %s failed (status %d)\n", what, s);
    return s == dnnl_success;
}

// Held while a kernel creates or runs primitives: serialises the calls, and makes oneDNN size a primitive's parallel
// work for every core of the pool (it reads the calling thread's "max concurrency" when the primitive is created,
// and MindSpore's own threads may have set it to 1), restoring the caller's value afterwards.
class ExecScope {
  public:
    ExecScope() : lock_(exec_mutex()) {
        dnnl_threadpool_interop_get_max_concurrency(&previous_);
        dnnl_threadpool_interop_set_max_concurrency(context().pool->get_num_threads());
    }
    ~ExecScope() { dnnl_threadpool_interop_set_max_concurrency(previous_); }

  private:
    std::lock_guard<std::mutex> lock_;
    int previous_ = 0;
};

}  // namespace dcgan_dnnl
