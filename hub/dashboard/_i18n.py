"""The dashboard's two languages, French and English, in plain words.

The language of a page is, in this order: the `estran_lang` cookie (set by the switch at the
top of every page), then the browser's `Accept-Language`, then French (the territory's). Every
text a page shows is a key of `TEXTS`; a key missing in one language is a test failure, not a
blank on screen.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGS = ("fr", "en")
DEFAULT_LANG = "fr"
COOKIE = "estran_lang"

# key -> (French, English). Plain wording: who reads this is a town's technician, an elected
# official or a resident, not an MQTT engineer.
TEXTS: Mapping[str, tuple[str, str]] = {
    # frame
    "site.name": ("Estran", "Estran"),
    "site.tagline": ("Capteurs du territoire", "The territory's sensors"),
    "skip": ("Aller au contenu", "Skip to content"),
    "nav.label": ("Navigation principale", "Main navigation"),
    "nav.fleet": ("Passerelles", "Gateways"),
    "nav.alerts": ("Alertes", "Alerts"),
    "nav.map": ("Carte", "Map"),
    "nav.open_data": ("Données ouvertes", "Open data"),
    "nav.numeriscore": ("Numériscore", "Digital footprint"),
    "nav.login": ("Se connecter", "Log in"),
    "nav.logout": ("Se déconnecter", "Log out"),
    "lang.label": ("Langue", "Language"),
    "lang.switch": ("English", "Français"),
    "signed_in_as": ("Connecté : {user} ({role})", "Signed in: {user} ({role})"),
    "role.admin": ("administrateur", "administrator"),
    "role.technician": ("technicien", "technician"),
    "role.reader": ("lecteur", "reader"),
    "role.anonymous": ("visiteur", "visitor"),
    "footer": (
        "Estran — les données du territoire restent publiques.",
        "Estran — the territory's data stays in public hands.",
    ),
    "not_available": (
        "Cette fonction n'est pas encore disponible sur ce serveur.",
        "This feature is not available on this server yet.",
    ),
    "no_js_chart": (
        "Le graphique a besoin de JavaScript ; le tableau ci-dessous donne les mêmes valeurs.",
        "The chart needs JavaScript; the table below gives the same values.",
    ),
    "yes": ("oui", "yes"),
    "no": ("non", "no"),
    "none": ("aucun", "none"),
    "unknown": ("inconnu", "unknown"),
    "never": ("jamais", "never"),
    # states
    "state.online": ("en ligne", "online"),
    "state.offline": ("hors ligne", "offline"),
    "state.unknown": ("pas encore vue", "not seen yet"),
    "state.revoked": ("retirée", "revoked"),
    # fleet overview
    "fleet.title": ("Passerelles", "Gateways"),
    "fleet.intro": (
        "Chaque passerelle lit les capteurs autour d'elle et envoie leurs mesures ici.",
        "Each gateway reads the sensors around it and sends their readings here.",
    ),
    "fleet.summary": (
        "{online} en ligne, {offline} hors ligne, {unknown} pas encore vues, sur {total}.",
        "{online} online, {offline} offline, {unknown} not seen yet, out of {total}.",
    ),
    "fleet.empty": (
        "Aucune passerelle n'a encore envoyé de message.",
        "No gateway has sent anything yet.",
    ),
    "fleet.all": ("Toutes", "All"),
    "fleet.attention": ("À surveiller ({n})", "Needing attention ({n})"),
    "fleet.none_attention": (
        "Aucune passerelle à surveiller : toutes sont en ligne, à jour, et leurs capteurs répondent.",
        "No gateway needs attention: all are online, up to date, and their sensors answer.",
    ),
    "pages.label": ("Pages", "Pages"),
    "pages.prev": ("← Page précédente", "← Previous page"),
    "pages.next": ("Page suivante →", "Next page →"),
    "pages.of": ("Page {page} sur {pages}", "Page {page} of {pages}"),
    "fleet.caption": ("État de chaque passerelle", "State of each gateway"),
    "group_of": ("groupe {group}", "group {group}"),
    "col.gateway": ("Passerelle", "Gateway"),
    "col.group": ("Groupe", "Group"),
    "col.site": ("Lieu", "Site"),
    "col.state": ("État", "State"),
    "col.last_seen": ("Dernier contact", "Last contact"),
    "col.software": ("Logiciel", "Software"),
    "col.config": ("Configuration (voulue / appliquée)", "Configuration (wanted / applied)"),
    "col.drift": ("Écart", "Drift"),
    "col.restart": ("Redémarrage en attente", "Restart pending"),
    "col.backlog": ("En attente d'envoi", "Waiting to be sent"),
    "col.readings": ("Mesures reçues", "Readings received"),
    "col.last_error": ("Dernière erreur", "Last error"),
    "col.sources": ("Sources", "Sources"),
    "col.sensor": ("Capteur", "Sensor"),
    "col.quantity": ("Grandeur", "Quantity"),
    "col.value": ("Valeur", "Value"),
    "col.unit": ("Unité", "Unit"),
    "col.time": ("Heure (UTC)", "Time (UTC)"),
    "col.reason": ("Motif", "Reason"),
    "col.count": ("Nombre", "Count"),
    "col.version": ("Version", "Version"),
    "col.outcome": ("Résultat", "Outcome"),
    "col.who": ("Par", "By"),
    "col.what": ("Action", "Action"),
    "col.min": ("Min", "Min"),
    "col.mean": ("Moyenne", "Mean"),
    "col.max": ("Max", "Max"),
    "col.start": ("Début (UTC)", "Start (UTC)"),
    "col.position": ("Position (lon, lat)", "Position (lon, lat)"),
    "col.dataset": ("Jeu de données", "Dataset"),
    "col.licence": ("Licence", "Licence"),
    "col.kind": ("Type", "Kind"),
    "col.description": ("Description", "Description"),
    "col.downloads": ("Téléchargements", "Downloads"),
    "drift.yes": ("en retard sur la configuration voulue", "behind the wanted configuration"),
    "drift.no": ("à jour", "up to date"),
    "restart.none": ("non", "no"),
    "restart.pending": (
        "oui, pour appliquer : {names}",
        "yes, to apply: {names}",
    ),
    "sources.not_reported": ("non signalé", "not reported"),
    "sources.summary": (
        "{ok} en marche, {degraded} avec erreurs, {down} arrêtées",
        "{ok} working, {degraded} with errors, {down} down",
    ),
    "source.ok": ("en marche", "working"),
    "source.degraded": ("avec erreurs", "with errors"),
    "source.down": ("arrêtée", "down"),
    "gateway.sources": ("Sources de mesure", "Sensor readers"),
    "gateway.sources_intro": (
        "Chaque source lit un port série ou la radio Bluetooth de la passerelle.",
        "Each reader listens to one serial port or to the gateway's Bluetooth radio.",
    ),
    "col.last_reading": ("Dernière mesure", "Last reading"),
    "col.errors": ("Erreurs (depuis le démarrage)", "Errors (since start)"),
    "col.detail": ("Détail", "Detail"),
    "not_enrolled": ("non inscrite", "not enrolled"),
    # gateway page
    "gateway.title": ("Passerelle {id}", "Gateway {id}"),
    "gateway.not_found": ("Passerelle inconnue : {id}", "Unknown gateway: {id}"),
    "gateway.facts": ("En bref", "At a glance"),
    "gateway.sensors": ("Capteurs et dernières valeurs", "Sensors and latest values"),
    "gateway.no_sensors": (
        "Aucune mesure reçue de cette passerelle.",
        "No reading received from this gateway.",
    ),
    "gateway.values": ("Dernières valeurs", "Latest values"),
    "gateway.values_hidden": (
        "valeurs réservées aux personnes autorisées",
        "values shown to authorised users only",
    ),
    "gateway.all_values": ("{n} autres valeurs", "{n} more values"),
    "gateway.errors": ("Messages refusés, par motif", "Messages refused, by reason"),
    "gateway.no_errors": ("Aucun message refusé.", "No message refused."),
    "gateway.config_history": ("Historique de configuration", "Configuration history"),
    "gateway.no_history": ("Aucun événement enregistré.", "Nothing recorded yet."),
    "gateway.commands": ("Commandes", "Commands"),
    "gateway.commands_intro": (
        "Une commande signée part vers la passerelle ; le résultat apparaît dans l'historique.",
        "A signed command goes to the gateway; its outcome shows in the history.",
    ),
    "gateway.command_sent": (
        "Commande « {name} » envoyée (n° {seq}).",
        "Command “{name}” sent (no. {seq}).",
    ),
    "gateway.footprint": ("Empreinte", "Footprint"),
    "gateway.dropped": ("Mesures perdues (mémoire pleine)", "Readings dropped (buffer full)"),
    "gateway.uptime": ("En marche depuis", "Running for"),
    "gateway.memory": ("Mémoire", "Memory"),
    "gateway.cpu": ("Temps de calcul", "CPU time"),
    "gateway.bytes_per_reading": ("Octets envoyés par mesure", "Bytes sent per reading"),
    "gateway.enrolled": ("Inscrite le", "Enrolled on"),
    "cmd.reload": ("Relire sa configuration", "Reload its configuration"),
    "cmd.reload.help": (
        "relit son fichier de configuration ; seules les sources modifiées redémarrent",
        "reads its configuration file again; only the readers whose settings changed restart",
    ),
    "cmd.status": ("Envoyer son état", "Send its status"),
    "cmd.status.help": ("renvoie son état tout de suite", "sends its state right away"),
    "cmd.rescan": ("Relancer les capteurs", "Restart its sensor readers"),
    "cmd.rescan.help": (
        "relance la lecture des ports série et de la radio (après un branchement)",
        "restarts reading the serial ports and the radio (after plugging something in)",
    ),
    "cmd.flush": ("Envoyer tout de suite ce qui attend", "Send what is waiting now"),
    "cmd.flush.help": (
        "enregistre sa mémoire tampon et envoie les mesures en attente sans attendre",
        "commits its buffer and sends the waiting readings without delay",
    ),
    "cmd.reboot": ("Redémarrer le programme", "Restart the program"),
    "cmd.reboot.help": (
        "arrête proprement le programme, que le système relance (pas la machine)",
        "stops the program cleanly and the system starts it again (not the machine)",
    ),
    "gateway.no_commands": (
        "Votre compte ne peut pas envoyer de commande à cette passerelle.",
        "Your account cannot send commands to this gateway.",
    ),
    "gateway.command_error.unknown": ("Commande inconnue.", "Unknown command."),
    "gateway.command_error.gone": ("Passerelle inconnue.", "Unknown gateway."),
    "gateway.command_error.refused": (
        "Commande refusée : la passerelle est retirée, ou le registre est occupé.",
        "Command refused: the gateway is revoked, or the registry is busy.",
    ),
    # sensor page
    "sensor.title": ("Capteur {id}", "Sensor {id}"),
    "sensor.not_found": ("Capteur inconnu : {id}", "Unknown sensor: {id}"),
    "sensor.latest": ("Dernières valeurs", "Latest values"),
    "sensor.chart": ("Évolution", "Over time"),
    "sensor.range": ("Période", "Period"),
    "sensor.quantity": ("Grandeur", "Quantity"),
    "sensor.show": ("Afficher", "Show"),
    "sensor.from": ("ou du (jour UTC)", "or from (UTC day)"),
    "sensor.to": ("au", "to"),
    "sensor.dates_help": (
        "Des dates choisies remplacent la période ; sans date de fin, jusqu'à maintenant.",
        "Dates, when given, replace the period; without an end date, up to now.",
    ),
    "sensor.range_error.format": (
        "Dates ignorées : elles s'écrivent AAAA-MM-JJ.",
        "Dates ignored: they are written YYYY-MM-DD.",
    ),
    "sensor.range_error.order": (
        "Dates ignorées : la fin vient avant le début.",
        "Dates ignored: the end comes before the start.",
    ),
    "sensor.range_error.long": (
        "Dates ignorées : {days} jours au plus.",
        "Dates ignored: {days} days at most.",
    ),
    "sensor.between": ("Du {start} au {end} (UTC)", "From {start} to {end} (UTC)"),
    "sensor.no_data": ("Aucune mesure sur cette période.", "No reading in this period."),
    "sensor.buckets": (
        "{points} points, chacun résume {bucket} de mesures ({count} mesures en tout).",
        "{points} points, each summing up {bucket} of readings ({count} readings in all).",
    ),
    "sensor.table": ("Les valeurs du graphique", "The chart's values"),
    "sensor.text_values": (
        "Cette grandeur n'est pas numérique : voici ses dernières valeurs.",
        "This quantity is not a number: here are its latest values.",
    ),
    "range.1h": ("la dernière heure", "the last hour"),
    "range.6h": ("les 6 dernières heures", "the last 6 hours"),
    "range.24h": ("les dernières 24 heures", "the last 24 hours"),
    "range.7d": ("les 7 derniers jours", "the last 7 days"),
    "range.30d": ("les 30 derniers jours", "the last 30 days"),
    # alerts
    "alerts.title": ("Alertes", "Alerts"),
    "alerts.firing": ("En cours", "Firing"),
    "alerts.acknowledged": ("Prises en charge", "Acknowledged"),
    "alerts.resolved": ("Résolues récemment", "Recently resolved"),
    "alerts.none": ("Aucune alerte.", "No alert."),
    "alerts.summary": (
        "{firing} en cours, {acknowledged} prises en charge, {resolved} résolues.",
        "{firing} firing, {acknowledged} acknowledged, {resolved} resolved.",
    ),
    "alerts.done.acknowledged": ("Alerte prise en charge.", "Alert acknowledged."),
    "alerts.done.resolved": ("Alerte marquée résolue.", "Alert marked resolved."),
    "alerts.error.gone": ("Cette alerte n'existe plus.", "This alert no longer exists."),
    "alerts.error.closed": ("Cette alerte est déjà résolue.", "This alert is already resolved."),
    "alerts.error.engine": (
        "Le moteur d'alertes ne répond pas ; réessayez dans un instant.",
        "The alert engine does not answer; try again in a moment.",
    ),
    "alerts.note": ("Note (facultative)", "Note (optional)"),
    "alerts.now": ("valeur actuelle : {value}", "value now: {value}"),
    "alerts.since": ("Depuis", "Since"),
    "alerts.severity": ("Gravité", "Severity"),
    "alerts.what": ("Ce qui se passe", "What is happening"),
    "alerts.subject": ("Concerne", "Concerns"),
    "alerts.by": ("Par", "By"),
    "alerts.actions": ("Actions", "Actions"),
    "alerts.for": ("pour l'alerte {id}", "for alert {id}"),
    "severity.info": ("information", "information"),
    "severity.warning": ("attention", "warning"),
    "severity.critical": ("critique", "critical"),
    "alerts.ack": ("Je m'en occupe", "Acknowledge"),
    "alerts.resolve": ("Marquer résolue", "Mark resolved"),
    # map
    "map.title": ("Carte des capteurs", "Map of the sensors"),
    "map.intro": (
        "Chaque point est un capteur ; choisissez-en un pour voir ses mesures.",
        "Each dot is a sensor; pick one to see its readings.",
    ),
    "map.no_positions": (
        "Aucun capteur visible n'a de position connue.",
        "No visible sensor has a known position.",
    ),
    "map.svg_label": ("Carte de {n} capteurs", "Map of {n} sensors"),
    "map.list": ("Les mêmes capteurs en liste", "The same sensors as a list"),
    "map.north": ("Nord en haut", "North is up"),
    # open data
    "open.title": ("Données ouvertes", "Open data"),
    "open.intro": (
        "Les mesures des capteurs publics du territoire, libres de réutilisation selon leur licence.",
        "The readings of the territory's public sensors, free to reuse under their licence.",
    ),
    "open.datasets": ("Jeux de données", "Datasets"),
    "open.no_datasets": ("Aucun jeu de données publié.", "No dataset published."),
    "open.caption": ("Les jeux de données ouverts", "The open datasets"),
    "open.sensors": ("Capteurs", "Sensors"),
    "open.steward": ("Responsable", "Steward"),
    "open.csv_of": ("{name} en CSV", "{name} as CSV"),
    "open.geojson_of": ("{name} en GeoJSON (carte)", "{name} as GeoJSON (map)"),
    "open.downloads_help": (
        "CSV : un tableau des dernières valeurs, lisible par un tableur. GeoJSON : les mêmes "
        "capteurs avec leur position, lisible par un logiciel de carte. La licence est rappelée "
        "dans chaque fichier.",
        "CSV: a table of the latest values, for a spreadsheet. GeoJSON: the same sensors with "
        "their position, for mapping software. Each file carries its licence.",
    ),
    "open.closed": ("Jeux de données fermés que vous pouvez lire", "Closed datasets you may read"),
    "open.closed_intro": (
        "Ces données ne sont pas publiques : ne les diffusez pas sans accord.",
        "These data are not public: do not share them without agreement.",
    ),
    "open.closed_caption": ("Les jeux de données fermés", "The closed datasets"),
    "open.more": ("Aller plus loin", "Going further"),
    "open.map": ("La carte des capteurs", "The map of the sensors"),
    "open.api_intro": (
        "Pour les développeurs : la description de l'API du serveur,",
        "For developers: the description of the server's API,",
    ),
    "open.numeriscore": (
        "Ce que coûte ce service (numériscore)",
        "What this service costs (digital footprint score)",
    ),
    "open.sensorthings": ("Interface SensorThings (OGC)", "SensorThings interface (OGC)"),
    "open.sensorthings_intro": (
        "Pour les logiciels : la norme OGC SensorThings API 1.1, à cette adresse :",
        "For software: the OGC SensorThings API 1.1 standard, at this address:",
    ),
    "open.is_open": ("ouvert", "open"),
    "open.is_closed": ("fermé", "closed"),
    "sensor.no_dataset": (
        "dans aucun jeu de données (réservé aux administrateurs)",
        "in no dataset (administrators only)",
    ),
    # numériscore
    "num.title": ("Numériscore", "Digital footprint score"),
    "num.intro": (
        "Ce que coûte chaque mesure en octets, en écritures sur la carte mémoire, en calcul et en énergie.",
        "What each reading costs in bytes, in memory-card writes, in computing and in energy.",
    ),
    "num.explain": (
        "Chaque jour, on compte pour chaque passerelle et pour le serveur central ce que "
        "coûtent les mesures : octets envoyés sur le réseau, octets écrits sur la carte "
        "mémoire (qui s'use), temps de calcul, et l'énergie qui en découle. Chaque chiffre "
        "reçoit une note de A (sobre) à E ; la note d'un service est la moyenne de ses notes.",
        "Every day, for each gateway and for the central server, we count what the readings "
        "cost: bytes sent over the network, bytes written to the memory card (which wears "
        "out), computing time, and the energy that follows. Each figure gets a grade from A "
        "(frugal) to E; a service's score is the mean of its grades.",
    ),
    "num.none": (
        "Pas encore de chiffres : le premier bilan s'écrit une minute après le démarrage.",
        "No figures yet: the first books are written a minute after the start.",
    ),
    "num.latest": ("Le {day}", "On {day}"),
    "num.fleet_score": ("Note de l'ensemble du service", "Score of the whole service"),
    "num.caption": ("Ce que coûte une mesure, par service", "What one reading costs, per service"),
    "num.history": ("Historique (ensemble du service)", "History (whole service)"),
    "num.formula": ("Comment la note est calculée", "How the score is worked out"),
    "num.formula_intro": (
        "Seuils supérieurs de chaque note (au-delà du dernier : E).",
        "Upper bound of each grade (above the last: E).",
    ),
    "num.hardware": (
        "Énergie estimée : temps de calcul multiplié par la puissance par cœur, plus la consommation au repos "
        "du matériel ({gw} pour les passerelles : {gw_source} ; serveur : {hub_source}).",
        "Estimated energy: computing time multiplied by the power per core, plus the idle power of the "
        "hardware ({gw} for the gateways: {gw_source}; server: {hub_source}).",
    ),
    "num.downloads": ("Télécharger les chiffres", "Download the figures"),
    "num.peer_note": (
        "La ligne « comparaison » donne les chiffres mesurés de la passerelle ThingsBoard IoT "
        "dans nos bancs d'essai (une mesure en JSON sur le réseau, 170 octets par mesure écrits).",
        "The “comparison” line gives the figures measured for the ThingsBoard IoT Gateway in "
        "our benchmarks (one JSON message per reading, 170 bytes written per reading).",
    ),
    "num.service": ("Service", "Service"),
    "num.figure": ("Chiffre", "Figure"),
    "num.score": ("Note", "Score"),
    "num.day": ("Jour", "Day"),
    "num.fleet": ("ensemble du service", "whole service"),
    "num.hub": ("serveur central", "central server"),
    "num.peer": ("comparaison : ThingsBoard IoT Gateway", "comparison: ThingsBoard IoT Gateway"),
    "num.gateway": ("passerelle {id}", "gateway {id}"),
    "fig.readings": ("Mesures", "Readings"),
    "fig.wire_bytes_per_reading": ("Octets envoyés par mesure", "Bytes sent per reading"),
    "fig.flash_bytes_per_reading": (
        "Octets écrits sur la carte mémoire par mesure",
        "Bytes written to the memory card per reading",
    ),
    "fig.cpu_ms_per_reading": ("Calcul par mesure (ms)", "Computing per reading (ms)"),
    "fig.storage_bytes_per_reading": (
        "Stockage au serveur par mesure (octets)",
        "Server storage per reading (bytes)",
    ),
    "fig.hub_cpu_ms_per_reading": (
        "Calcul au serveur par mesure (ms)",
        "Server computing per reading (ms)",
    ),
    "fig.energy_mwh_per_reading": ("Énergie par mesure (mWh)", "Energy per reading (mWh)"),
    "fig.energy_wh": ("Énergie (Wh)", "Energy (Wh)"),
    # login
    "login.title": ("Se connecter", "Log in"),
    "login.user": ("Identifiant", "User name"),
    "login.password": ("Mot de passe", "Password"),
    "login.submit": ("Se connecter", "Log in"),
    "login.error.credentials": (
        "Identifiant ou mot de passe incorrect.",
        "Wrong user name or password.",
    ),
    "login.error.csrf": (
        "Le formulaire a expiré : saisissez à nouveau vos identifiants.",
        "The form had expired: please enter your details again.",
    ),
    "login.error.rate": (
        "Trop d'essais : attendez une minute avant de réessayer.",
        "Too many attempts: wait a minute before trying again.",
    ),
    "login.help": (
        "Pas de compte ? L'administrateur du territoire en crée un (estran hub user add).",
        "No account? The territory's administrator makes one (estran hub user add).",
    ),
    "login.needed": (
        "Cette page est réservée aux personnes connectées.",
        "This page is for signed-in users only.",
    ),
    # errors
    "error.title": ("Erreur", "Error"),
    "error.forbidden": (
        "Votre compte ne permet pas d'ouvrir cette page.",
        "Your account cannot open this page.",
    ),
    "error.not_found": ("Cette page n'existe pas.", "This page does not exist."),
    "error.storage": (
        "La base de données ne répond pas ; réessayez dans un instant.",
        "The database does not answer; try again in a moment.",
    ),
    "error.bad_request": ("Demande invalide : {reason}", "Invalid request: {reason}"),
    "back_home": ("Retour à l'accueil", "Back to the start page"),
}


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the switch's cookie, else the best of Accept-Language."""
    if cookie in LANGS:
        return cookie
    best, best_q = DEFAULT_LANG, -1.0
    for i, part in enumerate((accept_language or "").split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGS:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        q -= i * 1e-6  # equal weights: the first listed wins
        if q > best_q and q > 0:
            best, best_q = primary, q
    return best


class Translator:
    """`t("key", name=value)` in one language."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else DEFAULT_LANG
        self._index = LANGS.index(self.lang)

    def __call__(self, key: str, **values: object) -> str:
        text = TEXTS[key][self._index]
        return text.format(**values) if values else text

    @property
    def other(self) -> str:
        """The language the switch offers."""
        return LANGS[1 - self._index]


__all__ = ["COOKIE", "DEFAULT_LANG", "LANGS", "TEXTS", "Translator", "negotiate"]
