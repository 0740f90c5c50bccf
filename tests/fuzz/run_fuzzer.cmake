# Seeds the corpus with the golden vectors, then fuzzes for a bounded time. Any crash,
# sanitizer report or broken property makes the fuzzer exit non-zero, and the test fail.
file(MAKE_DIRECTORY ${CORPUS})
execute_process(COMMAND ${WRITE_CORPUS} ${CORPUS} COMMAND_ERROR_IS_FATAL ANY)
execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -max_len=8192 -timeout=10 -rss_limit_mb=2048
          -print_final_stats=1 -artifact_prefix=${CORPUS}/../ ${CORPUS}
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "the fuzzer ${FUZZER} found a problem (exit ${result})")
endif()
