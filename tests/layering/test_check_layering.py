#!/usr/bin/python3
"""Self-test of scripts/check_layering.py: tiny fake trees in a temporary directory, one
good and several with a forbidden include, so that the check is seen to fail (naming the file,
the line and both layers) and to follow src/qkv/CMakeLists.txt when the layers change.

Usage: test_check_layering.py [path/to/check_layering.py]
"""

import pathlib
import subprocess
import sys
import tempfile
import textwrap
import unittest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "check_layering.py"

# core <- runtime <- ops <- top; io <- top. The comment's call and the one in a string must
# not be read as layers or edges.
CMAKE = textwrap.dedent(
    """\
    qkv_layer(core SOURCES core/a.cc)
    qkv_layer(runtime SOURCES runtime/b.cc DEPS qkv_core Threads::Threads)
    # qkv_layer(ghost SOURCES ghost/x.cc DEPS qkv_top)
    qkv_layer(ops
      SOURCES ops/c.cc
      DEPS qkv_runtime PRIVATE some::library)
    qkv_layer(io SOURCES io/d.cc DEPS qkv_core PRIVATE nlohmann_json::nlohmann_json)
    qkv_layer(top SOURCES top/e.cc DEPS qkv_ops qkv_io)
    add_library(qkv INTERFACE)
    target_link_libraries(qkv INTERFACE qkv_top)
    """
)

GOOD_FILES = {
    "src/qkv/core/a.h": '#pragma once\n#include <vector>\n#include "qkv/core/other.h"\n',
    "src/qkv/runtime/b.h": '#include "qkv/core/a.h"\n',
    # Two layers down, through runtime: allowed transitively.
    "src/qkv/ops/c.cc": '#include "qkv/ops/c.h"\n#include "qkv/core/a.h"\n',
    "src/qkv/ops/cpu/deep.cc": '#include "qkv/runtime/b.h"\n',
    "src/qkv/ops/c_test.cc": '#include "qkv/ops/c.h"\n#include "qkv/testing/helpers.h"\n',
    "src/qkv/testing/helpers.h": '#include "qkv/top/e.h"\n',
    "src/qkv/top/e.cc": '#include "qkv/io/d.h"\n#include "qkv/ops/c.h"\n',
    "src/qkv/io/d.cc": '// #include "qkv/top/e.h" in a comment is not an include\n',
    "tools/cli/main.cc": '#include "qkv/top/e.h"\n#include "qkv/core/a.h"\n',
}


def run_check(root):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


class CheckLayeringTest(unittest.TestCase):
    def setUp(self):
        self._temporary = tempfile.TemporaryDirectory(prefix="qkv_layering_")
        self.root = pathlib.Path(self._temporary.name)
        self.write("src/qkv/CMakeLists.txt", CMAKE)
        for path, text in GOOD_FILES.items():
            self.write(path, text)

    def tearDown(self):
        self._temporary.cleanup()

    def write(self, relative, text):
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def expect_pass(self):
        status, output = run_check(self.root)
        self.assertEqual(status, 0, output)
        return output

    def expect_fail(self, *needles):
        status, output = run_check(self.root)
        self.assertEqual(status, 1, output)
        for needle in needles:
            self.assertIn(needle, output)
        return output

    def test_good_tree_passes(self):
        output = self.expect_pass()
        self.assertIn("follow the layers", output)

    def test_upward_include_fails_naming_file_line_and_layers(self):
        self.write("src/qkv/core/a.cc", '#include "qkv/core/a.h"\n\n#include "qkv/ops/c.h"\n')
        self.expect_fail(
            "src/qkv/core/a.cc:3:",
            "layer 'core' includes qkv/ops/c.h from layer 'ops'",
        )

    def test_angle_bracket_includes_are_checked_too(self):
        self.write("src/qkv/runtime/b.cc", "#include <qkv/top/e.h>\n")
        self.expect_fail("src/qkv/runtime/b.cc:1:", "layer 'runtime'", "layer 'top'")

    def test_sibling_layer_is_not_below(self):
        # io and ops are both below top but not below each other.
        self.write("src/qkv/io/d.h", '#include "qkv/ops/c.h"\n')
        self.expect_fail("src/qkv/io/d.h:1:", "layer 'io' includes qkv/ops/c.h from layer 'ops'")

    def test_nested_directory_belongs_to_its_layer(self):
        self.write("src/qkv/ops/cpu/kernel.h", '#include "qkv/io/d.h"\n')
        self.expect_fail("src/qkv/ops/cpu/kernel.h:1:", "layer 'ops'", "layer 'io'")

    def test_testing_only_from_tests(self):
        self.write("src/qkv/ops/c.h", '#include "qkv/testing/helpers.h"\n')
        self.expect_fail("src/qkv/ops/c.h:1:", "'testing'")
        self.write("src/qkv/ops/c.h", "")
        self.write("tools/cli/run.cc", '#include "qkv/testing/helpers.h"\n')
        self.expect_fail("tools/cli/run.cc:1:", "'testing'")

    def test_tests_may_not_include_above_their_layer(self):
        self.write("src/qkv/runtime/b_test.cc", '#include "qkv/ops/c.h"\n')
        self.expect_fail("src/qkv/runtime/b_test.cc:1:", "layer 'runtime'", "layer 'ops'")

    def test_a_new_dependency_in_cmake_allows_the_include(self):
        self.write("src/qkv/io/d.h", '#include "qkv/ops/c.h"\n')
        self.expect_fail("layer 'io'")
        self.write(
            "src/qkv/CMakeLists.txt",
            CMAKE.replace("DEPS qkv_core PRIVATE nlohmann", "DEPS qkv_ops PRIVATE nlohmann"),
        )
        self.expect_pass()

    def test_target_link_libraries_adds_an_edge(self):
        self.write("src/qkv/io/d.h", '#include "qkv/ops/c.h"\n')
        self.expect_fail("layer 'io'")
        self.write("src/qkv/CMakeLists.txt", CMAKE + "target_link_libraries(qkv_io PUBLIC qkv_ops)\n")
        self.expect_pass()

    def test_a_new_layer_follows_cmake(self):
        # runtime gains a communicator layer comm between runtime and ops.
        self.write("src/qkv/comm/comm.h", '#include "qkv/runtime/b.h"\n')
        self.expect_fail("src/qkv/comm/comm.h", "not a layer")
        cmake = CMAKE.replace(
            "qkv_layer(ops", "qkv_layer(comm SOURCES comm/comm.cc DEPS qkv_runtime)\nqkv_layer(ops"
        )
        self.write("src/qkv/CMakeLists.txt", cmake)
        self.expect_pass()
        self.write("src/qkv/ops/c.h", '#include "qkv/comm/comm.h"\n')
        self.expect_fail("src/qkv/ops/c.h:1:", "layer 'ops' includes qkv/comm/comm.h")
        self.write("src/qkv/CMakeLists.txt", cmake.replace("DEPS qkv_runtime PRIVATE", "DEPS qkv_comm PRIVATE"))
        self.expect_pass()
        # ... and what ops reached through runtime, it still reaches through comm.
        self.write("src/qkv/ops/d.h", '#include "qkv/core/a.h"\n')
        self.expect_pass()

    def test_commented_out_layer_is_not_a_layer(self):
        self.write("src/qkv/top/e.h", '#include "qkv/ghost/x.h"\n')
        self.expect_fail("src/qkv/top/e.h:1:", "'ghost', which is not a layer")

    def test_cycle_is_reported(self):
        self.write("src/qkv/CMakeLists.txt", CMAKE + "target_link_libraries(qkv_core PUBLIC qkv_ops)\n")
        self.expect_fail("cycle")

    def test_no_layers_is_an_error_not_a_pass(self):
        self.write("src/qkv/CMakeLists.txt", "add_library(qkv INTERFACE)\n")
        status, output = run_check(self.root)
        self.assertEqual(status, 2, output)
        self.assertIn("no qkv_layer", output)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].endswith(".py"):
        SCRIPT = pathlib.Path(sys.argv.pop(1)).resolve()
    unittest.main()
