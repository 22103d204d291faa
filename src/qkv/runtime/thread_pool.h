// ThreadPool: the team of worker threads qkv runs on. qkv threads with OpenMP (GNU libgomp),
// because oneDNN, our GEMM library, is built on the same runtime: one team serves both, and a
// GEMM called inside a ParallelFor runs on its calling thread instead of oversubscribing.
//
// This class is the only code that configures OpenMP. It is created once, by the program
// (the command line or a test), and reaches every op through ExecutionContext.
#pragma once

namespace qkv {

class ThreadPool {
 public:
  // num_threads >= 1. Throws qkv::Error otherwise.
  explicit ThreadPool(int num_threads);

  int num_threads() const { return num_threads_; }

  // The number of hardware threads this process may run on (its CPU affinity mask).
  static int HardwareThreads();

  // How long an idle OpenMP thread spins before it sleeps, in libgomp's spin iterations: long
  // enough to span the microseconds between a decoding step's regions, short enough that a
  // busy neighbour on the cores costs little (docs/architecture.md, "Threads and other
  // processes", has the measurements).
  static constexpr const char* kSpinCount = "1000";

  // libgomp reads its waiting settings once, when it loads: unless the user set
  // OMP_WAIT_POLICY or GOMP_SPINCOUNT, re-executes the program (argv, from /proc/self/exe) with
  // GOMP_SPINCOUNT=kSpinCount. Call first thing in main; returns only if nothing was to be done
  // or the re-exec failed (the program then goes on with libgomp's defaults).
  static void UseBoundedSpinning(char** argv);

 private:
  int num_threads_;
};

}  // namespace qkv
