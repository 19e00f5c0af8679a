#
# SPDX-License-Identifier: Apache-2.0
#
# otaimage: a wic source plugin that fills a partition of a .wks from the flash-ready image
# the otaimg image type (classes-recipe/ota.bbclass) wrote with ota-build: the sysroot with
# the commit deployed, or the boot partition with the boot script and firmware.
#
#   part / --source otaimage --sourceparams="partition=root" --ondisk mmcblk0 --align 4096
#   part /boot --source otaimage --sourceparams="partition=boot" --ondisk mmcblk0 --align 4096
#
# partition= names a partition of the ota-build layout (the presets' are boot and root;
# default root). The partition's bytes are copied as they are (wic sizes the partition from
# them), so --fstype and --size are not used.
#
# The deployment's kernel arguments name the sysroot partition by the PARTUUID ota-build gave
# it (the report's kargs). Keep the partition at the same number of a disk with the same
# identifier (GPT: the plugin sets the partition's UUID; MBR: bootloader --diskid with the
# signature the plugin logs), or set OTA_KARGS, e.g. "root=/dev/mmcblk0p2".

import json
import logging
import os
import subprocess

from wic import WicError
from wic.pluginbase import SourcePlugin
from wic.misc import get_bitbake_var

logger = logging.getLogger('wic')


class OtaImagePlugin(SourcePlugin):
    """Copy a partition of the otaimg image type's flash-ready image."""

    name = 'otaimage'

    @classmethod
    def do_prepare_partition(cls, part, source_params, creator, cr_workdir,
                             oe_builddir, bootimg_dir, kernel_dir, rootfs_dir,
                             native_sysroot):
        report_file = get_bitbake_var('OTA_IMAGE_REPORT')
        if not report_file or not os.path.exists(report_file):
            raise WicError("otaimage: no ota-build image report (%s): add otaimg to IMAGE_FSTYPES "
                           "(IMAGE_CLASSES += \"ota\" does) and let wic follow it" % report_file)
        with open(report_file) as f:
            report = json.load(f)

        want = source_params.get('partition', 'root')
        found = [p for p in report.get('partitions', []) if p.get('name') == want]
        if not found:
            raise WicError("otaimage: partition=%s: the ota image has %s" %
                           (want, ', '.join(p.get('name', '?') for p in report.get('partitions', []))))
        p = found[0]

        dst = os.path.join(cr_workdir, 'otaimage-%s.img' % want)
        # A sparse copy of the partition's bytes.
        subprocess.run(['dd', 'if=%s' % report['image'], 'of=%s' % dst, 'iflag=skip_bytes,count_bytes',
                        'skip=%d' % p['start'], 'count=%d' % p['size'], 'bs=4M', 'conv=sparse', 'status=none'],
                       check=True)

        partuuid = p.get('partuuid', '')
        if '-' in partuuid and len(partuuid) == 11:
            logger.info("otaimage: %s is partition %d of MBR disk 0x%s in the ota image (bootloader --diskid 0x%s)",
                        want, int(partuuid[9:], 16), partuuid[:8], partuuid[:8])
        elif partuuid:
            part.uuid = partuuid
        part.source_file = dst
        part.size = (p['size'] + 1023) // 1024
        part.fixed_size = part.size
