// OtaClient is ota-client daemon (org.otakit.OtaClient1 on the system bus) as a QML type:
// the properties of the D-Bus interface, kept current by PropertiesChanged, its methods and
// its signals, through the proxy that qdbusxml2cpp generates from the interface's XML.
#pragma once

#include <QObject>
#include <QString>
#include <QVariantMap>

class OrgOtakitOtaClient1Interface;
class QDBusPendingCall;

class OtaClient : public QObject
{
    Q_OBJECT
    // True once the daemon answered: the properties hold its values.
    Q_PROPERTY(bool ready READ ready NOTIFY changed)
    Q_PROPERTY(QString status READ status NOTIFY changed)
    Q_PROPERTY(QString error READ error NOTIFY changed)
    Q_PROPERTY(bool updateAvailable READ updateAvailable NOTIFY changed)
    Q_PROPERTY(bool rollbackAvailable READ rollbackAvailable NOTIFY changed)
    Q_PROPERTY(bool restartRequired READ restartRequired NOTIFY changed)
    Q_PROPERTY(QString lastResult READ lastResult NOTIFY changed)
    Q_PROPERTY(QString bootedRevision READ bootedRevision NOTIFY changed)
    Q_PROPERTY(QString bootedVersion READ bootedVersion NOTIFY changed)
    Q_PROPERTY(QString bootedMetadata READ bootedMetadata NOTIFY changed)
    Q_PROPERTY(QString defaultRevision READ defaultRevision NOTIFY changed)
    Q_PROPERTY(QString defaultVersion READ defaultVersion NOTIFY changed)
    Q_PROPERTY(QString rollbackRevision READ rollbackRevision NOTIFY changed)
    Q_PROPERTY(QString rollbackVersion READ rollbackVersion NOTIFY changed)
    Q_PROPERTY(QString remoteRevision READ remoteRevision NOTIFY changed)
    Q_PROPERTY(QString remoteVersion READ remoteVersion NOTIFY changed)
    Q_PROPERTY(QString remoteSubject READ remoteSubject NOTIFY changed)
    Q_PROPERTY(qlonglong remoteTimestamp READ remoteTimestamp NOTIFY changed)
    Q_PROPERTY(QString remoteMetadata READ remoteMetadata NOTIFY changed)

public:
    explicit OtaClient(QObject *parent = nullptr);

    bool ready() const { return m_ready; }
    QString status() const { return str("Status"); }
    QString error() const { return str("Error"); }
    bool updateAvailable() const { return m_props.value("UpdateAvailable").toBool(); }
    bool rollbackAvailable() const { return m_props.value("RollbackAvailable").toBool(); }
    bool restartRequired() const { return m_props.value("RestartRequired").toBool(); }
    QString lastResult() const { return str("LastResult"); }
    QString bootedRevision() const { return str("BootedRevision"); }
    QString bootedVersion() const { return str("BootedVersion"); }
    QString bootedMetadata() const { return str("BootedMetadata"); }
    QString defaultRevision() const { return str("DefaultRevision"); }
    QString defaultVersion() const { return str("DefaultVersion"); }
    QString rollbackRevision() const { return str("RollbackRevision"); }
    QString rollbackVersion() const { return str("RollbackVersion"); }
    QString remoteRevision() const { return str("RemoteRevision"); }
    QString remoteVersion() const { return str("RemoteVersion"); }
    QString remoteSubject() const { return str("RemoteSubject"); }
    qlonglong remoteTimestamp() const { return m_props.value("RemoteTimestamp").toLongLong(); }
    QString remoteMetadata() const { return str("RemoteMetadata"); }

    // Each starts the daemon's operation and returns at once: progress() and finished()
    // report it, callFailed() a refusal (e.g. org.otakit.OtaClient1.Error.Busy).
    Q_INVOKABLE void check();
    Q_INVOKABLE void download();
    Q_INVOKABLE void install();
    Q_INVOKABLE void update();
    Q_INVOKABLE void rollback();
    Q_INVOKABLE void applyBundle(const QString &path);
    Q_INVOKABLE void markGood();
    Q_INVOKABLE void cancel();
    Q_INVOKABLE void reboot();

signals:
    void changed();
    void progress(const QString &phase, double percent, qulonglong bytesDone, qulonglong bytesTotal);
    void finished(const QString &operation, bool success, const QString &message);
    void callFailed(const QString &method, const QString &error);

private slots:
    void onPropertiesChanged(const QString &interface, const QVariantMap &changed, const QStringList &invalidated);

private:
    QString str(const char *name) const { return m_props.value(QLatin1String(name)).toString(); }
    void watch(const QString &method, const QDBusPendingCall &call);
    void load();

    OrgOtakitOtaClient1Interface *m_proxy;
    QVariantMap m_props;
    bool m_ready = false;
};
