# `cmake --install BUILD --prefix P` puts qkv where another CMake project finds it with
#   find_package(qkv CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE qkv::qkv)
# P/include/qkv/**.h (library headers, not tests or test helpers), P/lib/libqkv_*.a, the qkv
# binary in P/bin, and P/lib/cmake/qkv/ (qkvConfig.cmake, its version file and the exported
# targets). examples/generate is a program built this way; tests/install/install_test.sh
# installs, builds it and runs it.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(QKV_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/qkv)
# Every library of src/qkv/CMakeLists.txt, the umbrella target, and qkv_options: the libraries
# link it PRIVATE, so their exported link interface names it ($<LINK_ONLY:...>); a consumer
# takes only its link options from it (the sanitizer runtime of an ASan build), never its
# warning flags.
set(QKV_EXPORTED_TARGETS qkv_core qkv_runtime qkv_kernels qkv_ops qkv_layers qkv_io
                         qkv_tokenizer qkv_model qkv_train qkv_infer qkv_inspect qkv_eval qkv qkv_options)
install(TARGETS ${QKV_EXPORTED_TARGETS}
        EXPORT qkvTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS qkv_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The headers keep their qkv/ prefix (#include "qkv/infer/generator.h"). testing/ holds
# test-only helpers and *_test.* are tests.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/src/qkv
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h"
        PATTERN "*_test.h" EXCLUDE
        PATTERN "*_test_support.h" EXCLUDE
        PATTERN "testing" EXCLUDE)

install(EXPORT qkvTargets NAMESPACE qkv:: DESTINATION ${QKV_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/qkvConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/qkvConfig.cmake
                              INSTALL_DESTINATION ${QKV_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/qkvConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/qkvConfig.cmake ${PROJECT_BINARY_DIR}/qkvConfigVersion.cmake
        DESTINATION ${QKV_INSTALL_CMAKEDIR})
