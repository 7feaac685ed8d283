"""The dispatcher's HTTP face, on FastAPI: the API under ``/api/v1`` (:mod:`.app` builds it, one router per
family of endpoints), the SMS gateway's callbacks (:mod:`.callbacks`) and, beside them, the status page.

Every endpoint calls the same flow function its command calls, as the user whose bearer token it carries
(:mod:`.auth`); the errors of the flow become HTTP statuses in one place (:func:`.app.create_app`).
"""
