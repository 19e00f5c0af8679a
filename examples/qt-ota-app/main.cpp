// qt-ota-app: a QML page that shows the device's versions and drives ota-client daemon.
//
// With --autotest it updates the device by itself: it calls update() once the daemon
// answered, saves a screenshot of the window (--screenshot FILE, PNG) the first time the
// download is between 5 and 95 percent, with the value its progress bar shows then in
// FILE.txt, and quits on Finished('update', ...): exit 0 when the update succeeded and the
// screenshot was taken.
#include <QCommandLineParser>
#include <QFile>
#include <QGuiApplication>
#include <QQmlApplicationEngine>
#include <QQuickWindow>
#include <QTextStream>
#include <QTimer>
#include <cstdio>

#include "otaclient.h"

int main(int argc, char *argv[])
{
    QGuiApplication app(argc, argv);
    QCommandLineParser parser;
    parser.addHelpOption();
    parser.addOption({"autotest", "update the device, then quit"});
    parser.addOption({"screenshot", "save a screenshot taken mid-download to <file>", "file"});
    parser.process(app);

    qmlRegisterType<OtaClient>("OtaKit", 1, 0, "OtaClient");
    QQmlApplicationEngine engine;
    engine.load(QUrl("qrc:/main.qml"));
    if (engine.rootObjects().isEmpty())
        return 1;
    if (!parser.isSet("autotest"))
        return app.exec();

    auto *window = qobject_cast<QQuickWindow *>(engine.rootObjects().first());
    auto *ota = window->findChild<OtaClient *>("ota");
    QObject *bar = window->findChild<QObject *>("progressBar");
    if (!ota || !bar || !ota->ready()) {
        fprintf(stderr, "qt-ota-app: the daemon does not answer\n");
        return 1;
    }
    const QString shot = parser.value("screenshot");
    bool taken = false;
    QObject::connect(ota, &OtaClient::progress, &app, [&](const QString &phase, double percent) {
        if (taken || phase != "download" || percent < 5 || percent > 95)
            return;
        // The page's handler, connected first, has set the bar: draw and grab the window.
        const double shown = bar->property("value").toDouble();
        QImage image = window->grabWindow();
        if (shot.isEmpty() || !image.save(shot, "PNG")) {
            fprintf(stderr, "qt-ota-app: cannot save the screenshot %s\n", qPrintable(shot));
            return;
        }
        QFile f(shot + ".txt");
        if (f.open(QIODevice::WriteOnly)) {
            QTextStream(&f) << "value=" << shown << "\nphase=" << phase << "\nwidth=" << image.width() << "\nheight=" << image.height() << "\n";
            taken = true;
        }
    });
    QObject::connect(ota, &OtaClient::finished, &app, [&](const QString &op, bool success, const QString &message) {
        printf("Finished(%s, %s, %s)\n", qPrintable(op), success ? "true" : "false", qPrintable(message));
        fflush(stdout);
        if (op == "update")
            app.exit(success && taken ? 0 : 2);
    });
    QObject::connect(ota, &OtaClient::callFailed, &app, [&](const QString &method, const QString &error) {
        fprintf(stderr, "qt-ota-app: %s: %s\n", qPrintable(method), qPrintable(error));
        app.exit(1);
    });
    QTimer::singleShot(0, ota, &OtaClient::update);
    QTimer::singleShot(120000, &app, [&] {
        fprintf(stderr, "qt-ota-app: no Finished(update) within 2 minutes\n");
        app.exit(3);
    });
    return app.exec();
}
