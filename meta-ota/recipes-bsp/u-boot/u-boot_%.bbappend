# Enabled with the ota image class (IMAGE_CLASSES += "ota"); otherwise this changes nothing,
# not even task signatures.
require ${@bb.utils.contains('IMAGE_CLASSES', 'ota', 'recipes-bsp/u-boot/ota-u-boot.inc', '', d)}
