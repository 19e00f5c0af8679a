#include "otaclient.h"

#include <QDBusConnection>
#include <QDBusPendingCallWatcher>
#include <QDBusPendingReply>
#include <QMetaProperty>

#include "otaclient1_interface.h"

static const char *const service = "org.otakit.OtaClient1";
static const char *const path = "/org/otakit/OtaClient1";

OtaClient::OtaClient(QObject *parent)
    : QObject(parent)
    , m_proxy(new OrgOtakitOtaClient1Interface(service, path, QDBusConnection::systemBus(), this))
{
    connect(m_proxy, &OrgOtakitOtaClient1Interface::Progress, this, &OtaClient::progress);
    connect(m_proxy, &OrgOtakitOtaClient1Interface::Finished, this, &OtaClient::finished);
    QDBusConnection::systemBus().connect(service, path, "org.freedesktop.DBus.Properties", "PropertiesChanged", this,
                                         SLOT(onPropertiesChanged(QString, QVariantMap, QStringList)));
    load();
}

// load reads every property through the generated proxy, whose Q_PROPERTYs are the
// interface's.
void OtaClient::load()
{
    const QMetaObject *mo = m_proxy->metaObject();
    for (int i = mo->propertyOffset(); i < mo->propertyCount(); ++i) {
        const char *name = mo->property(i).name();
        m_props.insert(QLatin1String(name), m_proxy->property(name));
    }
    m_ready = m_proxy->isValid() && m_proxy->lastError().type() == QDBusError::NoError;
    emit changed();
}

void OtaClient::onPropertiesChanged(const QString &interface, const QVariantMap &changed, const QStringList &)
{
    if (interface != QLatin1String(service))
        return;
    for (auto it = changed.begin(); it != changed.end(); ++it)
        m_props.insert(it.key(), it.value());
    emit this->changed();
}

void OtaClient::watch(const QString &method, const QDBusPendingCall &call)
{
    auto *w = new QDBusPendingCallWatcher(call, this);
    connect(w, &QDBusPendingCallWatcher::finished, this, [this, method](QDBusPendingCallWatcher *w) {
        QDBusPendingReply<> reply = *w;
        if (reply.isError())
            emit callFailed(method, reply.error().name() + ": " + reply.error().message());
        w->deleteLater();
    });
}

void OtaClient::check() { watch("Check", m_proxy->Check()); }
void OtaClient::download() { watch("Download", m_proxy->Download()); }
void OtaClient::install() { watch("Install", m_proxy->Install()); }
void OtaClient::update() { watch("Update", m_proxy->Update()); }
void OtaClient::rollback() { watch("Rollback", m_proxy->Rollback()); }
void OtaClient::applyBundle(const QString &file) { watch("ApplyBundle", m_proxy->ApplyBundle(file)); }
void OtaClient::markGood() { watch("MarkGood", m_proxy->MarkGood()); }
void OtaClient::cancel() { watch("Cancel", m_proxy->Cancel()); }
void OtaClient::reboot() { watch("Reboot", m_proxy->Reboot()); }
