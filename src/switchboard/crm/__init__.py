"""CRM adapters: one module per CRM, each implementing :class:`switchboard.crm.base.CrmAdapter`."""
