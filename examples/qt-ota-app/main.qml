import QtQuick
import QtQuick.Controls.Basic
import QtQuick.Layouts
import OtaKit 1.0

ApplicationWindow {
    id: window
    width: 640
    height: 320
    visible: true
    title: "Software update"

    OtaClient {
        id: ota
        objectName: "ota"
        onProgress: (phase, percent, bytesDone, bytesTotal) => {
            progressBar.value = percent
            phaseLabel.text = phase + " " + percent.toFixed(1) + " %"
        }
        onFinished: (operation, success, message) => {
            resultLabel.text = message
            if (success && operation !== "check")
                progressBar.value = 100
        }
        onCallFailed: (method, error) => resultLabel.text = error
    }

    function shortRev(rev) { return rev === "" ? "none" : rev.substring(0, 12) }

    ColumnLayout {
        anchors.fill: parent
        anchors.margins: 16
        spacing: 8

        Label { text: "Running: " + (ota.bootedVersion || "?") + "  (" + shortRev(ota.bootedRevision) + ")" }
        Label { text: "Next boot: " + (ota.defaultVersion || "?") + "  (" + shortRev(ota.defaultRevision) + ")" }
        Label { text: "Server: " + (ota.remoteVersion || "not checked") + "  (" + shortRev(ota.remoteRevision) + ")" }
        Label {
            text: ota.status !== "idle" ? "Working: " + ota.status
                : ota.restartRequired ? "Restart to finish the update"
                : ota.updateAvailable ? "Update available" : "Up to date"
            font.bold: true
        }
        Label { id: phaseLabel; text: ota.status }

        // Flat colours, so that a test can measure the bar in a screenshot.
        ProgressBar {
            id: progressBar
            objectName: "progressBar"
            Layout.fillWidth: true
            from: 0
            to: 100
            value: 0
            background: Rectangle { implicitHeight: 24; color: "#303030" }
            contentItem: Item {
                implicitHeight: 24
                Rectangle {
                    width: progressBar.visualPosition * parent.width
                    height: parent.height
                    color: "#00c000"
                }
            }
        }
        Label { id: resultLabel; Layout.fillWidth: true; elide: Text.ElideRight; color: ota.error !== "" ? "firebrick" : "black" }

        RowLayout {
            Layout.fillWidth: true
            Button { text: "Check"; onClicked: ota.check() }
            Button { text: "Update"; enabled: ota.updateAvailable; onClicked: ota.update() }
            Button { text: "Cancel"; enabled: ota.status !== "idle"; onClicked: ota.cancel() }
            Button { text: "Restart"; enabled: ota.restartRequired; onClicked: ota.reboot() }
            Button { text: "Roll back"; enabled: ota.rollbackAvailable; onClicked: ota.rollback() }
        }
        Item { Layout.fillHeight: true }
    }
}
