# One man page from a program's help: help2man, then the page's own title (libusbnet(7) is
# made from `usbnet env --help`, whose program is usbnet).
execute_process(
  COMMAND ${HELP2MAN} --no-info --no-discard-stderr --section=${SECTION}
          --name=${DESCRIPTION} --include=${INCLUDE} --help-option=${HELP_OPTION}
          --version-option=--version --source=usbnet --manual=usbnet --output=${OUTPUT}
          ${PROGRAM}
  RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "help2man failed for ${PAGE}(${SECTION})")
endif()
file(READ ${OUTPUT} text)
string(TOUPPER "${PAGE}" title)
string(REGEX REPLACE "\n\\.TH [^ ]+ " "\n.TH ${title} " text "${text}")
string(REGEX REPLACE "\n\\.SH NAME\n[^\n]*" "\n.SH NAME\n${PAGE} \\\\- ${DESCRIPTION}" text
       "${text}")
file(WRITE ${OUTPUT} "${text}")
