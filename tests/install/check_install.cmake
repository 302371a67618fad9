# Installs the build tree into a fresh prefix, then configures, builds and runs the consumer project
# in tests/install/consumer against it. Run by ctest as
#   cmake -DBUILD_DIR=... -DWORK_DIR=... -DSOURCE_DIR=... [-DPYTHON=... -DPYTHON_DIR=...] -P check_install.cmake
# With PYTHON, the installed Python package is imported from the prefix and runs a forward.
foreach(var BUILD_DIR WORK_DIR SOURCE_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_install.cmake needs -D${var}=...")
  endif()
endforeach()

function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${what}: ok")
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
step("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
step("configure the consumer" ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/consumer -B ${WORK_DIR}/build
     -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
step("build the consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
step("run the consumer" ${WORK_DIR}/build/consumer ${prefix}/share/pathpatch/zoo/induction-gpt2)
message(STATUS "${last_output}")

if(PYTHON)
  step("import the installed Python package" ${CMAKE_COMMAND} -E env PYTHONPATH=${prefix}/${PYTHON_DIR}
       ${PYTHON} -c "import pathpatch, sys; assert pathpatch.__file__.startswith(sys.argv[1]), pathpatch.__file__; \
m = pathpatch.load_model(sys.argv[2]); print(m, pathpatch.forward(m, [5, 6, 7]).logits.shape)"
       ${prefix} ${prefix}/share/pathpatch/zoo/induction-gpt2)
  message(STATUS "${last_output}")
endif()
