"""Examples for the OpenAPI document, taken from the vendor's API pages."""

CREATE_SESSION = {
    "catalogVersion": "1.0",
    "prd": {"description": "An AI-powered customer support product",
            "title": "AI Customer Support"},
    "schemaVersion": "1.0",
}

UPDATE_SESSION = {
    "plan": {"capabilities": ["chat", "search"], "surfaces": ["widget"]},
    "status": "generating",
}

APPEND_EVENT = {
    "type": "info",
    "message": "Generation started",
    "payload": {"inputParameters": {"model": "runtype-v1", "temperature": 0.7}},
}

EVENT = {
    "createdAt": "2024-06-10T09:16:00.000Z",
    "id": "evt_8f3b2c9d7a1e4f2b0c6d5e4a",
    "message": "Generation started",
    "organizationId": "org_9a8b7c6d5e4f3g2h",
    "payload": {"inputParameters": {"model": "runtype-v1", "temperature": 0.7}},
    "sequence": 1,
    "sessionId": "sess_1234567890abcdefghijklmn",
    "stage": "generating",
    "type": "info",
    "userId": "user_4d3c2b1a0f9e8d7c",
}

SESSION = {
    "assemblyState": {"step": "assembling", "progress": 75,
                      "details": {"componentsCompleted": 3, "componentsPending": 1}},
    "catalogVersion": "v2.4.1",
    "createdAt": "2024-06-10T09:15:30.000Z",
    "expiresAt": "2024-06-17T09:15:30.000Z",
    "id": "sess_1234567890abcdefghijklmn",
    "organizationId": "org_9a8b7c6d5e4f3g2h",
    "plan": {"name": "Pro Plan", "limits": {"maxSessions": 1000, "maxRequestsPerMinute": 60}},
    "prd": {"productId": "prod_9876543210fedcba", "name": "AI Content Generator",
            "version": "1.3.0"},
    "productObject": {"type": "text-generation", "config": {"maxTokens": 512, "language": "en"}},
    "productObjectHash": "4f0c1b6a0e2a7d9f3c5b8e1d2a4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f2a4b6c8d",
    "schemaVersion": "1.0.0",
    "status": "generating",
    "updatedAt": "2024-06-10T09:20:00.000Z",
    "userId": "user_4d3c2b1a0f9e8d7c",
}

# What a create answers: status intake, the fields given, null for the others.
CREATED_SESSION = {
    "assemblyState": None,
    "catalogVersion": CREATE_SESSION["catalogVersion"],
    "createdAt": "2024-06-10T09:15:30.000Z",
    "expiresAt": "2024-06-17T09:15:30.000Z",
    "id": "sess_1234567890abcdefghijklmn",
    "organizationId": "org_9a8b7c6d5e4f3g2h",
    "plan": None,
    "prd": CREATE_SESSION["prd"],
    "productObject": None,
    "productObjectHash": None,
    "schemaVersion": CREATE_SESSION["schemaVersion"],
    "status": "intake",
    "updatedAt": "2024-06-10T09:15:30.000Z",
    "userId": "user_4d3c2b1a0f9e8d7c",
}

SESSION_WITH_EVENTS = {**SESSION, "events": [EVENT]}

SESSION_PAGE = {
    "data": [SESSION],
    "pagination": {"limit": 20, "offset": 0, "total": 125, "hasMore": True,
                   "nextCursor": "1718010930000.sess_1234567890abcdefghijklmn"},
}

EVENT_PAGE = {
    "data": [EVENT],
    "pagination": {"limit": 100, "hasMore": False, "nextCursor": EVENT["id"]},
}
